/**
 * The row path: how the stream worker writes a batch of one coupon's wins to
 * coupon_issues, in ONE transaction, on every dialect (persistVerifiedWins, wins
 * as objects: a win that is not the gate's is never inserted); then it
 * acknowledges the entries and drops them from the stream (ack.lua).
 * Every entry but the packed path's first deliveries comes through here: held
 * batches, pending and reclaimed entries, and the packed path's fallback.
 * - Any failure that is not the database refusing a row (see isRowError: down,
 *   read-only, disk full, timeouts, unknown errors), or the gate not loaded: the
 *   batch stays pending and is held (held.ts) for the worker to retry after its
 *   back-off, for as long as it takes. An answered win is never given up for the
 *   database's own trouble.
 * - A poison entry (malformed, or a row the database refused WORKER_MAX_ATTEMPTS
 *   times) goes to the coupon's dead-letter stream with the reason; the rest of its
 *   batch is persisted one by one, so it blocks nothing. A win that is already a
 *   row is acknowledged instead: the dead letters hold only wins still missing.
 * - The row lock + verification keep DB ⊆ Redis: a win whose Redis state was lost
 *   (and so may have been handed to someone else by the rebuilt gate) is
 *   dead-lettered, never inserted.
 * - A win the database refuses for its rank (migration 003: the rank is another
 *   user's, or past the quantity) is lost for good: it is dead-lettered at once,
 *   counted (firstcome_wins_lost_total) and logged with its user, and the gate is
 *   marked behind the database so it catches up before it answers again.
 */
import { msOf, type StreamWin } from '../../coupon-state/entries.js'
import { redisVerifier } from '../../coupon-state/verify.js'
import type { Db } from '../../db/database.js'
import { isRankRefusal, isRowError } from '../../db/errors.js'
import { findIssue } from '../../db/issues-repo.js'
import type { Metrics } from '../../ops/metrics.js'
import type { RedisClient } from '../../redis/connection.js'
import type { CouponStream } from '../coupon-stream.js'
import { Held } from './held.js'
import {
  GateNotLoaded,
  type Persisted,
  persistVerifiedWins,
  type WinWriter,
} from './verified-wins.js'

export interface RowPersisterOptions {
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
  /** one line per lost win (never rate-limited: it names the user) */
  lost: (entry: StreamWin, cause: LostCause, reason: string) => void
  /** the database holds what the gate gave again: have it catch up (CouponState.markBehind) */
  markBehind?: ((couponId: number) => Promise<void>) | undefined
}

export type LostCause = 'rank_taken' | 'beyond_quantity'

export class RowPersister {
  readonly #o: RowPersisterOptions
  readonly held = new Held()
  readonly #writer: WinWriter

  constructor(options: RowPersisterOptions) {
    this.#o = options
    this.#writer = { db: options.db, writer: 'stream', metrics: options.metrics }
  }

  async persist(stream: CouponStream, entries: StreamWin[]): Promise<void> {
    if (entries.length === 0) return
    const { couponId } = stream
    await this.waitPersistDelay(entries.reduce((max, e) => Math.max(max, msOf(e.id)), 0))
    let persisted: Persisted<StreamWin>
    try {
      persisted = await persistVerifiedWins(
        this.#writer,
        couponId,
        entries,
        redisVerifier(this.#o.client, stream.keys),
      )
    } catch (err) {
      await this.failed(stream, entries, err)
      return
    }
    const { unknown, refused } = persisted
    const settled = new Set([...unknown, ...refused])
    await stream.ack(settled.size ? entries.filter((e) => !settled.has(e)) : entries)
    this.held.done(entries.map((e) => e.id))
    if (refused.length > 0) await this.#lose(stream, refused, 'rank_taken')
    for (const [i, entry] of unknown.entries()) {
      try {
        await this.#deadLetter(
          stream,
          entry,
          'not in the gate: its Redis state was lost before the win was persisted',
        )
      } catch (err) {
        this.held.add(couponId, unknown.slice(i))
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
        this.held.add(stream.couponId, entries.slice(i + 1))
        throw err
      }
    }
  }

  /** What a failed batch becomes: held, split, retried or dead-lettered. */
  async failed(stream: CouponStream, entries: StreamWin[], err: unknown) {
    const { couponId } = stream
    if (err instanceof GateNotLoaded) {
      // Hold the batch, have the gate rebuilt (outside the transaction: the rebuild
      // takes the coupon's row lock), and retry after the usual back-off.
      this.held.add(couponId, entries)
      await this.#o.ensureLoaded?.(couponId).catch(() => {})
      throw err
    }
    if (!isRowError(err)) {
      // Not about any row (Redis or the database down, read-only, full, timing
      // out, or an error never seen before): nothing counts against these wins.
      // Keep the whole batch in hand (still pending in Redis) and let the loop
      // back off; it is retried for as long as the fault lasts.
      this.held.add(couponId, entries)
      throw err
    }
    if (entries.length > 1) {
      // The database refused a row of the batch: persist one by one to find it.
      await this.persistAlone(stream, entries)
      return
    }
    const entry = entries[0] as StreamWin
    if (isRankRefusal(err)) {
      await this.#lose(stream, [entry], 'beyond_quantity')
      return
    }
    const attempts = this.held.refused(entry.id)
    const reason = err instanceof Error ? err.message : String(err)
    if (attempts < this.#o.maxAttempts) {
      this.#o.warn(err, 'a win was rejected by the database; will retry')
      this.held.add(couponId, [entry])
      return
    }
    try {
      await this.#deadLetter(stream, entry, `rejected ${attempts} times: ${reason}`)
    } catch (failure) {
      this.held.add(couponId, [entry])
      throw failure
    }
    this.held.done([entry.id])
  }

  /**
   * Wins the database refused for their rank: answered, and never to be rows. Each
   * goes to the dead letters with its reason, is counted and logged with its user;
   * and the gate, which gave a rank the database holds, is marked behind.
   */
  async #lose(stream: CouponStream, entries: StreamWin[], cause: LostCause) {
    const { couponId } = stream
    await this.#o.markBehind?.(couponId).catch(() => {})
    for (const [i, entry] of entries.entries()) {
      const reason =
        cause === 'rank_taken'
          ? `rank ${entry.win.rank} is another user's in the database (Redis lost data)`
          : `rank ${entry.win.rank} lies past the coupon's quantity`
      try {
        await this.#deadLetter(stream, entry, `lost: ${reason}`)
      } catch (err) {
        this.held.add(couponId, entries.slice(i))
        throw err
      }
      this.held.done([entry.id])
      this.#o.metrics?.winsLost.inc({ coupon: String(couponId), cause })
      this.#o.lost(entry, cause, reason)
    }
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

  /** youngest: when the batch's newest win was queued (epoch ms) */
  async waitPersistDelay(youngest: number) {
    if (this.#o.persistDelayMs <= 0) return
    const wait = youngest + this.#o.persistDelayMs - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }
}
