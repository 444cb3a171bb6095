/**
 * Persisting answered wins inside the gate: the one transaction every writer of a
 * Redis-mode win takes (the stream worker's row and packed paths, and a spend of a
 * QUEUED win):
 *   lock the coupon row → ask the gate which wins are its own (same user, same
 *   rank) → insert those idempotently → advance issued_quantity by the rows
 *   inserted → the caller's own step, if any (a spend marks its row used) → commit.
 * Every gate load and rebuild takes the same row lock, so the gate's answer holds
 * until the commit: a win whose Redis state was lost (and may have been handed to
 * someone else by the rebuilt gate) never becomes a row (DB ⊆ gate). A gate that
 * holds no state for the coupon cannot tell: GateNotLoaded, and nothing is written.
 *
 * A batch comes in one of two shapes:
 * - wins as objects: each is judged; the answer names those the gate does not hold
 *   (`unknown`, not inserted) and those the database refused for their rank
 *   (`refused`: the rank is another user's row);
 * - packed columns (PostgreSQL's first deliveries, see packed.ts): judged at once
 *   by one count per read while the insert runs (no round trip per win), and all or
 *   nothing: a win the gate does not hold (NotAllKnown) or one the insert skipped
 *   (SomeSkipped) rolls the transaction back, and the caller hands the batch to the
 *   object shape, which tells them apart.
 *
 * Metrics, once per transaction and by writer: firstcome_persist_duration_seconds
 * and firstcome_persist_errors_total; on a commit, firstcome_persist_batch_size
 * observes the wins the transaction was given (inserted or not), and
 * firstcome_wins_persisted_total counts the rows it inserted. A packed batch handed
 * back is counted by the transaction that takes it over, not twice.
 */
import { performance } from 'node:perf_hooks'
import type { PackedWins } from '../../coupon-state/entries.js'
import { addIssuedQuantity, lockCoupons } from '../../db/coupons-repo.js'
import type { Db } from '../../db/database.js'
import { insertNewWins, insertWins, type JoinedWins, refusedWins } from '../../db/issues-repo.js'
import type { Win } from '../../domain/coupon.js'
import type { StockGate } from '../../gate/stock-gate.js'
import type { Metrics, Writer } from '../../ops/metrics.js'

/** The coupon has no gate state in Redis (lost and not yet rebuilt). */
export class GateNotLoaded extends Error {
  override readonly name = 'GateNotLoaded'
  readonly code = 'GATE_NOT_LOADED'

  constructor() {
    super('the coupon has no gate state in Redis yet')
  }
}

/** Some packed wins are not the gate's: the batch is judged win by win instead. */
export class NotAllKnown extends Error {
  override readonly name = 'NotAllKnown'
  readonly code = 'NOT_ALL_KNOWN'

  constructor(n: number) {
    super(`${n} wins of the batch are not in the gate`)
  }
}

/**
 * The insert skipped some packed wins: a win already a row (a spend persisted it)
 * and a rank the database holds for another user look alike here; the object
 * shape tells them apart.
 */
export class SomeSkipped extends Error {
  override readonly name = 'SomeSkipped'
  readonly code = 'SOME_SKIPPED'

  constructor(n: number) {
    super(`${n} wins of the batch were not inserted`)
  }
}

/** Users and ranks joined by commas, as read-wins.lua packs them. */
export type PackedUsersRanks = Pick<PackedWins, 'users' | 'ranks'>

/** The gate's word on wins of one coupon, asked under the coupon's row lock. */
export interface WinVerifier {
  /** Whether the gate holds each win (same user, same rank), in order. */
  holds(wins: readonly Win[]): Promise<readonly boolean[] | 'NOT_LOADED'>
}

/** A verifier that also judges packed wins, with no work per win on this side. */
export interface PackedVerifier extends WinVerifier {
  /** How many of the packed wins the gate does not hold. */
  strangers(parts: readonly PackedUsersRanks[]): Promise<number | 'NOT_LOADED'>
}

/** Packed wins of one coupon: the columns to insert and the reads they came in. */
export interface PackedBatch {
  columns: JoinedWins
  parts: readonly PackedUsersRanks[]
  count: number
}

/** Where wins are written, and who writes them (the metrics' label). */
export interface WinWriter {
  db: Db
  writer: Writer
  metrics?: Metrics | undefined
}

/** What the transaction did with wins given as objects. */
export interface Persisted<W> {
  /** rows inserted (a win already a row is not counted again) */
  inserted: number
  /** wins the gate does not hold: never inserted */
  unknown: W[]
  /** wins the gate holds whose rank the database holds for another user */
  refused: W[]
}

export interface PersistOptions<W, T> {
  /** the rows' date_created (default: now) */
  now?: Date
  /** the caller's step, in the same transaction, after the insert */
  also?: (trx: Db, persisted: Persisted<W>) => Promise<T>
}

/** Wins as objects: anything that carries one (a stream entry, a spend's win). */
export type Verifiable = { readonly win: Win }

export function persistVerifiedWins<W extends Verifiable, T = undefined>(
  to: WinWriter,
  couponId: number,
  wins: readonly W[],
  verifier: WinVerifier,
  options?: PersistOptions<W, T>,
): Promise<Persisted<W> & { also: T }>
export function persistVerifiedWins(
  to: WinWriter,
  couponId: number,
  wins: PackedBatch,
  verifier: PackedVerifier,
): Promise<number>
export async function persistVerifiedWins<W extends Verifiable, T>(
  to: WinWriter,
  couponId: number,
  wins: readonly W[] | PackedBatch,
  verifier: WinVerifier | PackedVerifier,
  options: PersistOptions<W, T> = {},
): Promise<(Persisted<W> & { also: T }) | number> {
  const packed = !Array.isArray(wins)
  const size = packed ? (wins as PackedBatch).count : wins.length
  const now = options.now ?? new Date()
  const started = performance.now()
  let inserted: number
  let result: (Persisted<W> & { also: T }) | number
  try {
    result = await to.db.transaction().execute(async (trx) => {
      await lockCoupons(trx, [couponId])
      if (packed) return insertPacked(trx, wins as PackedBatch, verifier as PackedVerifier, now)
      const persisted = await insertKnown(trx, couponId, wins as readonly W[], verifier, now)
      const also = (await options.also?.(trx, persisted)) as T
      return { ...persisted, also }
    })
    inserted = typeof result === 'number' ? result : result.inserted
  } catch (err) {
    if (!(err instanceof NotAllKnown || err instanceof SomeSkipped))
      to.metrics?.persistTimed(to.writer, started, size, false)
    throw err
  }
  to.metrics?.persistTimed(to.writer, started, size, true)
  to.metrics?.persisted.inc({ coupon: String(couponId) }, inserted)
  return result
}

/** Wins as objects: the gate's own are inserted; the others are answered. */
async function insertKnown<W extends Verifiable>(
  trx: Db,
  couponId: number,
  wins: readonly W[],
  verifier: WinVerifier,
  now: Date,
): Promise<Persisted<W>> {
  const holds = await verifier.holds(wins.map((w) => w.win))
  if (holds === 'NOT_LOADED') throw new GateNotLoaded()
  const known: W[] = []
  const unknown: W[] = []
  wins.forEach((w, i) => {
    if (holds[i]) known.push(w)
    else unknown.push(w)
  })
  const inserted = await insertWins(
    trx,
    known.map((w) => w.win),
    now,
  )
  // Fewer rows than wins: a pair already there, or a rank another user holds.
  const refused =
    inserted < known.length
      ? (
          await refusedWins(
            trx,
            couponId,
            known.map((w) => ({ userId: w.win.userId, w })),
          )
        ).map((r) => r.w)
      : []
  await addIssuedQuantity(trx, couponId, inserted)
  return { inserted, unknown, refused }
}

/** Packed wins: verified while the insert runs; all the gate's and all new, or a rollback. */
async function insertPacked(
  trx: Db,
  batch: PackedBatch,
  verifier: PackedVerifier,
  now: Date,
): Promise<number> {
  const [insert, verify] = await Promise.allSettled([
    insertNewWins(trx, batch.columns, now),
    verifier.strangers(batch.parts),
  ])
  if (verify.status === 'rejected') throw verify.reason
  if (verify.value === 'NOT_LOADED') throw new GateNotLoaded()
  if (verify.value > 0) throw new NotAllKnown(verify.value)
  if (insert.status === 'rejected') throw insert.reason
  if (insert.value < batch.count) throw new SomeSkipped(batch.count - insert.value)
  await addIssuedQuantity(trx, batch.columns.couponId, insert.value)
  return insert.value
}

/**
 * The gate port as a verifier (any gate: the in-process one holds every coupon).
 * Not `lookup`: loading a lost coupon takes the row lock the caller holds.
 */
export function gateVerifier(gate: Pick<StockGate, 'lookupLoaded'>): WinVerifier {
  return {
    async holds(wins) {
      const held = await Promise.all(wins.map((w) => gate.lookupLoaded(w.couponId, w.userId)))
      if (held.includes('NOT_LOADED')) return 'NOT_LOADED'
      return held.map((h, i) => h !== 'NOT_LOADED' && h !== null && h.rank === wins[i]?.rank)
    },
  }
}
