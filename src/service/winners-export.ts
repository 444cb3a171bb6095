/**
 * The winners' export: every win of a coupon by rank — the rows, ISSUED or USED,
 * read through a database cursor, and in Redis mode the wins still QUEUED
 * (answered, not yet written by the worker), which only Redis holds, merged in
 * by rank. Each win carries its partner code, code number rank.
 *
 * The queued wins are read first and the rows second (as the coupon box does): a
 * win persisted in between is then in both, and the row wins; never in neither.
 * They are held in memory while the rows stream past: a coupon's backlog,
 * normally a second's worth of wins (more only while the database is down).
 */
import { codesAt } from '../db/codes-repo.js'
import type { Db } from '../db/database.js'
import { type RawReaders, streamWinners, type WinnerRow } from '../db/winners-repo.js'
import type { Coupon, Win } from '../domain/coupon.js'
import { AppError, UnavailableError } from '../domain/errors.js'
import { type IssueState, isUsed } from './issue-service.js'

export interface ExportRow extends WinnerRow {
  state: IssueState
}

export interface WinnersExportDeps {
  /** a pool of its own: a slow download holds its connection as long as it takes */
  db: Db
  /** the connection (SQLite) or pool (MySQL) under `db`, read past Kysely */
  raw?: RawReaders
  findCoupon: (couponId: number) => Promise<Coupon | null>
  /** the coupon's wins not yet persisted, as far as the gate's queue knows (embedded: none) */
  queuedWins: (couponId: number) => Promise<Win[]>
}

export class WinnersExport {
  readonly #deps: WinnersExportDeps

  constructor(deps: WinnersExportDeps) {
    this.#deps = deps
  }

  /**
   * Opens the export. Everything that can refuse it (no such coupon, Redis or the
   * database down) does so here, before an answer has begun; then the rows come in
   * batches, read only as they are taken.
   */
  async open(couponId: number): Promise<AsyncGenerator<ExportRow[]>> {
    const coupon = await this.#deps.findCoupon(couponId)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
    const queued = (await this.#deps.queuedWins(couponId)).sort((a, b) => a.rank - b.rank)
    const codes = await codesAt(
      this.#deps.db,
      couponId,
      queued.map((w) => w.rank),
    )
    const batches = merged(queued, codes, streamWinners(this.#deps.db, couponId, this.#deps.raw))
    let first: IteratorResult<ExportRow[]>
    try {
      first = await batches.next()
    } catch (err) {
      throw err instanceof AppError ? err : new UnavailableError('database', err)
    }
    return (async function* () {
      if (first.done) return
      yield first.value
      yield* batches
    })()
  }
}

/** The rows and the queued wins, by rank, in batches; a rank in both is the row's. */
async function* merged(
  queued: readonly Win[],
  codes: Map<number, string>,
  rows: AsyncIterable<WinnerRow[]>,
): AsyncGenerator<ExportRow[]> {
  let q = 0
  const queuedRow = (w: Win): ExportRow => ({
    rank: w.rank,
    userId: w.userId,
    state: 'QUEUED',
    issuedAt: new Date(w.issuedAt),
    usedAt: null,
    orderId: null,
    code: codes.get(w.rank) ?? null,
  })
  // A win seen twice in the queue (delivered again) is listed once.
  let last = 0
  const take = (batch: ExportRow[], w: Win) => {
    if (w.rank !== last) batch.push(queuedRow(w))
    last = w.rank
  }
  for await (const page of rows) {
    // Without queued wins (embedded; Redis mode once the worker has caught up)
    // the page is the batch, each row given its state in place.
    let batch = page as ExportRow[]
    if (q < queued.length && (queued[q] as Win).rank <= (page[page.length - 1] as WinnerRow).rank) {
      batch = []
      for (const row of page) {
        while (q < queued.length && (queued[q] as Win).rank <= row.rank) {
          const w = queued[q++] as Win
          if (w.rank < row.rank) take(batch, w)
        }
        batch.push(row as ExportRow)
      }
    }
    for (const row of batch)
      if (row.state === undefined) row.state = isUsed(row) ? 'USED' : 'ISSUED'
    yield batch
  }
  const rest: ExportRow[] = []
  while (q < queued.length) take(rest, queued[q++] as Win)
  if (rest.length > 0) yield rest
}
