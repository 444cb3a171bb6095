/**
 * How the stream worker writes a batch of one coupon's wins to coupon_issues, in
 * ONE transaction:
 *   lock the coupon row → verify each win against the gate (while the insert runs;
 *   a win that is not the gate's rolls back) → insert (idempotently, or as new wins
 *   with a fallback) → advance issued_quantity; then acknowledge the entries and
 *   drop them from the stream (ack.lua).
 * On PostgreSQL new entries arrive packed as columns (read-wins.lua) and go to the
 * database and back to Redis unsplit: per win, the worker does no JS work on that
 * path. Elsewhere they are read raw and persisted win by win.
 * - Any failure that is not the database refusing a row (see isRowError: down,
 *   read-only, disk full, timeouts, unknown errors), or the gate not loaded: the
 *   batch stays pending, held here for the worker to retry after its back-off, for
 *   as long as it takes. An answered win is never given up for the database's
 *   own trouble.
 * - A poison entry (malformed, or a row the database refused WORKER_MAX_ATTEMPTS
 *   times) goes to the coupon's dead-letter stream with the reason; the rest of its
 *   batch is persisted one by one, so it blocks nothing. A win that is already a
 *   row is acknowledged instead: the dead letters hold only wins still missing.
 * - The row lock + verification keep DB ⊆ Redis: a win whose Redis state was lost
 *   (and so may have been handed to someone else by the rebuilt gate) is
 *   dead-lettered, never inserted.
 */
import { performance } from 'node:perf_hooks'
import { type PackedWins, type StreamWin, unpackWins } from '../coupon-state/entries.js'
import type { CouponKeys } from '../coupon-state/keys.js'
import { countStrangers, sortByGate } from '../coupon-state/verify.js'
import { addIssuedQuantity, lockCoupons } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { isUniqueViolation } from '../db/errors.js'
import { findIssue, insertNewWins, insertWins } from '../db/issues-repo.js'
import { isRowError } from '../db/row-errors.js'
import type { Metrics } from '../ops/metrics.js'
import type { RedisClient } from '../redis/connection.js'
import type { CouponStream } from './coupon-stream.js'

/** The coupon has no gate state in Redis (lost and not yet rebuilt). */
class GateNotLoaded extends Error {
  override readonly name = 'GateNotLoaded'
  readonly code = 'GATE_NOT_LOADED'

  constructor() {
    super('the coupon has no gate state in Redis yet')
  }
}

/** Some packed wins are not the gate's: the batch is judged win by win instead. */
class NotAllKnown extends Error {
  override readonly name = 'NotAllKnown'
  readonly code = 'NOT_ALL_KNOWN'

  constructor(n: number) {
    super(`${n} wins of the batch are not in the gate`)
  }
}

/** an entry id's time part (epoch ms) */
const msOf = (id: string) => Number(id.slice(0, id.indexOf('-')))
const joined = (parts: PackedWins[], column: keyof Omit<PackedWins, 'count'>) =>
  parts.map((p) => p[column]).join(',')

export interface StreamPersisterOptions {
  client: RedisClient
  db: Db
  metrics?: Metrics | undefined
  maxAttempts: number
  /** see StreamWorkerOptions */
  ensureLoaded?: ((couponId: number) => Promise<boolean>) | undefined
  /** wait until a win is this old before persisting it (see docs: AOF everysec) */
  persistDelayMs: number
  /** the worker's warning, rate-limited */
  warn: (err: unknown, msg: string) => void
}

export class StreamPersister {
  readonly #o: StreamPersisterOptions
  /** entries in hand that failed and wait for another attempt, by coupon */
  readonly #retry = new Map<number, StreamWin[]>()
  readonly #attempts = new Map<string, number>()

  constructor(options: StreamPersisterOptions) {
    this.#o = options
  }

  /** The entries of the coupon held for another attempt. */
  held(couponId: number): StreamWin[] | undefined {
    return this.#retry.get(couponId)
  }

  /** The entries of the coupon held for another attempt, no longer held; none: undefined. */
  takeHeld(couponId: number): StreamWin[] | undefined {
    const retry = this.#retry.get(couponId)
    if (!retry?.length) return undefined
    this.#retry.delete(couponId)
    return retry
  }

  /**
   * persist for a batch of packed wins, with the same transaction and guarantees,
   * and the wins never split into JS values. The gate is asked, still under the
   * row lock, only whether every win is its own, while the INSERT runs; any other
   * answer (or a win already in the database) rolls back and the batch takes the
   * win-by-win path.
   */
  async persistPacked(stream: CouponStream, parts: PackedWins[]): Promise<void> {
    const last = parts.at(-1)
    if (!last) return
    const { couponId } = stream
    // ids ascend: the last is the youngest
    await this.#waitPersistDelay(msOf(last.ids.slice(last.ids.lastIndexOf(',') + 1)))
    const wins = {
      couponId,
      users: joined(parts, 'users'),
      ranks: joined(parts, 'ranks'),
      issuedAts: joined(parts, 'issuedAts'),
    }
    let inserted: number
    const started = performance.now()
    try {
      inserted = await this.#o.db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [couponId])
        const [insert, verify] = await Promise.allSettled([
          insertNewWins(trx, wins, new Date()),
          this.#verifyPacked(stream.keys, parts),
        ])
        if (verify.status === 'rejected') throw verify.reason
        if (insert.status === 'rejected') throw insert.reason
        await addIssuedQuantity(trx, couponId, insert.value)
        return insert.value
      })
    } catch (err) {
      const entries = parts.flatMap((p) => unpackWins(couponId, p))
      // Not all the gate's, or some already persisted: the win-by-win path (which
      // verifies each win and inserts idempotently) sorts them out.
      if (err instanceof NotAllKnown || isUniqueViolation(err)) await this.persist(stream, entries)
      else {
        this.#o.metrics?.persistTimed('stream', started, entries.length, false)
        await this.#failed(stream, entries, err)
      }
      return
    }
    this.#o.metrics?.persistTimed('stream', started, inserted, true)
    await Promise.all(parts.map((p) => stream.ackIds(p.ids)))
    this.#o.metrics?.persisted.inc({ coupon: String(couponId) }, inserted)
  }

  /** Throws unless the gate is loaded and every packed win is the gate's. */
  async #verifyPacked(k: CouponKeys, parts: PackedWins[]) {
    const strangers = await countStrangers(this.#o.client, k, parts)
    if (strangers === 'NOT_LOADED') throw new GateNotLoaded()
    if (strangers > 0) throw new NotAllKnown(strangers)
  }

  async persist(stream: CouponStream, entries: StreamWin[]): Promise<void> {
    if (entries.length === 0) return
    const { couponId } = stream
    await this.#waitPersistDelay(entries.reduce((max, e) => Math.max(max, msOf(e.id)), 0))
    let verified: { known: StreamWin[]; unknown: StreamWin[]; inserted: number }
    const started = performance.now()
    try {
      verified = await this.#o.db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [couponId])
        const { known, unknown } = await this.#verify(stream.keys, entries)
        const inserted = await insertWins(
          trx,
          known.map((e) => e.win),
          new Date(),
        )
        await addIssuedQuantity(trx, couponId, inserted)
        return { known, unknown, inserted }
      })
    } catch (err) {
      this.#o.metrics?.persistTimed('stream', started, entries.length, false)
      await this.#failed(stream, entries, err)
      return
    }
    this.#o.metrics?.persistTimed('stream', started, entries.length, true)
    await stream.ack(verified.known)
    for (const e of entries) this.#attempts.delete(e.id)
    this.#o.metrics?.persisted.inc({ coupon: String(couponId) }, verified.inserted)
    for (const [i, entry] of verified.unknown.entries()) {
      try {
        await this.#deadLetter(
          stream,
          entry,
          'not in the gate: its Redis state was lost before the win was persisted',
        )
      } catch (err) {
        this.#hold(couponId, verified.unknown.slice(i))
        throw err
      }
    }
  }

  /**
   * Each entry in a transaction of its own, so a row the database refuses fails
   * only itself. On a failure that is not the row's, the entry and those after it
   * are held and the pass backs off.
   */
  async persistAlone(stream: CouponStream, entries: StreamWin[]): Promise<void> {
    for (const [i, entry] of entries.entries()) {
      try {
        await this.persist(stream, [entry])
      } catch (err) {
        this.#hold(stream.couponId, entries.slice(i + 1))
        throw err
      }
    }
  }

  /**
   * Splits the wins the gate knows (same user, same rank) from the others. With
   * no gate state at all (lost, not yet rebuilt) nothing can be told apart:
   * GateNotLoaded, and the batch waits for the rebuild, which will count the wins
   * still in the stream.
   */
  async #verify(k: CouponKeys, entries: StreamWin[]) {
    const sorted = await sortByGate(this.#o.client, k, entries)
    if (sorted === 'NOT_LOADED') throw new GateNotLoaded()
    return sorted
  }

  async #failed(stream: CouponStream, entries: StreamWin[], err: unknown) {
    const { couponId } = stream
    if (err instanceof GateNotLoaded) {
      // Hold the batch, have the gate rebuilt (outside the transaction: the rebuild
      // takes the coupon's row lock), and retry after the usual back-off.
      this.#hold(couponId, entries)
      await this.#o.ensureLoaded?.(couponId).catch(() => {})
      throw err
    }
    if (!isRowError(err)) {
      // Not about any row (Redis or the database down, read-only, full, timing
      // out, or an error never seen before): nothing counts against these wins.
      // Keep the whole batch in hand (still pending in Redis) and let the loop
      // back off; it is retried for as long as the fault lasts.
      this.#hold(couponId, entries)
      throw err
    }
    if (entries.length > 1) {
      // The database refused a row of the batch: persist one by one to find it.
      await this.persistAlone(stream, entries)
      return
    }
    const entry = entries[0] as StreamWin
    const attempts = (this.#attempts.get(entry.id) ?? 0) + 1
    this.#attempts.set(entry.id, attempts)
    const reason = err instanceof Error ? err.message : String(err)
    if (attempts < this.#o.maxAttempts) {
      this.#o.warn(err, 'a win was rejected by the database; will retry')
      this.#hold(couponId, [entry])
      return
    }
    try {
      await this.#deadLetter(stream, entry, `rejected ${attempts} times: ${reason}`)
    } catch (failure) {
      this.#hold(couponId, [entry])
      throw failure
    }
    this.#attempts.delete(entry.id)
  }

  /**
   * Moves a win that cannot be persisted to the dead letters, unless it is already
   * a row (another worker, or an earlier attempt whose answer was lost, persisted
   * it): then it is only acknowledged. Throws if the database cannot tell.
   */
  async #deadLetter(stream: CouponStream, entry: StreamWin, reason: string) {
    if (await findIssue(this.#o.db, stream.couponId, entry.win.userId)) await stream.ack([entry])
    else await stream.deadLetter(entry, reason)
  }

  /** Keeps entries in hand for the worker's next attempt, after those already held. */
  #hold(couponId: number, entries: StreamWin[]) {
    this.#retry.set(couponId, [...(this.#retry.get(couponId) ?? []), ...entries])
  }

  /** youngest: when the batch's newest win was queued (epoch ms) */
  async #waitPersistDelay(youngest: number) {
    if (this.#o.persistDelayMs <= 0) return
    const wait = youngest + this.#o.persistDelayMs - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }
}
