/**
 * Embedded mode's WinRecorder: every win of one event-loop tick is written in ONE
 * transaction, and each caller's promise resolves only after that commit. A
 * `kill -9` can therefore lose only wins that were never answered.
 *
 * If a commit fails for any reason but a refused row (database unreachable, busy,
 * read-only, full, timing out: see isRowError), its callers
 * get UnavailableError (503) at once, but the wins stay granted in the gate and are
 * retried with backoff until the database takes them. Taking them back instead
 * would be wrong when the failure is ambiguous (a connection lost after COMMIT):
 * the row would exist while the gate handed its coupon to someone else. A retried
 * win that the process never gets to write was never answered 201, and the gate
 * rebuilt at the next start does not know it.
 *
 * If the database refuses a win itself (a constraint or a bad value), the batch
 * is written one win at a time so the others still succeed, and the refused win is
 * answered 503 and dropped; its coupon stays counted in the gate (never oversold).
 */

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Database } from '../db/database.js'
import { isRowError } from '../db/errors.js'
import { persistWins } from '../db/issues-repo.js'
import type { Win } from '../domain/coupon.js'
import { UnavailableError } from '../domain/errors.js'
import type { Metrics } from '../ops/metrics.js'
import type { WinRecorder } from './win-recorder.js'

interface Pending {
  win: Win
  resolve: () => void
  reject: (err: Error) => void
}

const MAX_BATCH = 5000
const MIN_BACKOFF_MS = 50
const MAX_BACKOFF_MS = 2000
const settled = () => {}
/** How long close() waits for the wins in hand to be written. */
export const CLOSE_DRAIN_MS = 10_000

export interface GroupCommitOptions {
  onError?: (err: unknown, wins: number) => void
  /** close() stopped with wins still unwritten (none of them was answered 201) */
  onUnwritten?: (wins: number) => void
  metrics?: Metrics
}

export class GroupCommitRecorder implements WinRecorder {
  readonly #database: Database
  readonly #onError: (err: unknown, wins: number) => void
  readonly #onUnwritten: (wins: number) => void
  readonly #metrics: Metrics | undefined
  #pending: Pending[] = []
  #timer: NodeJS.Immediate | NodeJS.Timeout | null = null
  #flushing: Promise<void> | null = null
  #backoffMs = 0
  #idle: (() => void)[] = []

  constructor(database: Database, options: GroupCommitOptions = {}) {
    this.#database = database
    this.#onError = options.onError ?? (() => {})
    this.#onUnwritten = options.onUnwritten ?? (() => {})
    this.#metrics = options.metrics
  }

  record(win: Win): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ win, resolve, reject })
      this.#schedule()
    })
  }

  /** Wins handed in but not yet committed (including those being retried). */
  get backlog(): number {
    return this.#pending.length
  }

  drain(): Promise<void> {
    if (!this.#timer && !this.#flushing && this.#pending.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** drain(), given at most `ms`: true if everything handed in was committed by then. */
  drainWithin(ms: number): Promise<boolean> {
    return Promise.race([this.drain().then(() => true), sleep(ms, false, { ref: false })])
  }

  /**
   * Before the process stops: wins still waiting for an unreachable database were
   * answered 503, never 201; they get a bounded chance (`ms`), and those still
   * unwritten then are reported (onUnwritten).
   */
  async close(ms = CLOSE_DRAIN_MS): Promise<void> {
    if (!(await this.drainWithin(ms))) this.#onUnwritten(this.backlog)
  }

  #schedule() {
    if (this.#timer || this.#flushing) return
    const run = () => {
      this.#timer = null
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = null
        if (this.#pending.length > 0) this.#schedule()
        else for (const resolve of this.#idle.splice(0)) resolve()
      })
    }
    this.#timer = this.#backoffMs > 0 ? setTimeout(run, this.#backoffMs) : setImmediate(run)
  }

  async #flush() {
    const batch = this.#pending.splice(0, MAX_BATCH)
    const err = await this.#write(batch)
    if (!err) return this.#succeeded(batch)
    if (isRowError(err) && batch.length > 1) {
      // The database refused something in the batch itself: write one by one, so
      // one bad win does not fail the others.
      for (const p of batch) {
        const one = await this.#write([p])
        if (one) this.#failed([p], one)
        else this.#succeeded([p])
      }
      return
    }
    this.#failed(batch, err)
  }

  async #write(batch: Pending[]): Promise<unknown> {
    const started = performance.now()
    try {
      const now = new Date()
      const wins = batch.map((p) => p.win)
      const inserted: [number, number][] = []
      await this.#database.db
        .transaction()
        .execute((trx) => persistWins(trx, wins, now, (id, n) => inserted.push([id, n])))
      this.#metrics?.persistTimed('group_commit', started, batch.length, true)
      // Rows, not wins: a win a spend persisted first is a row already.
      for (const [id, n] of inserted) this.#metrics?.persisted.inc({ coupon: String(id) }, n)
      return null
    } catch (err) {
      this.#metrics?.persistTimed('group_commit', started, batch.length, false)
      return err ?? new Error('write failed')
    }
  }

  #succeeded(batch: Pending[]) {
    this.#backoffMs = 0
    for (const p of batch) p.resolve()
  }

  #failed(batch: Pending[], err: unknown) {
    this.#onError(err, batch.length)
    // The database layer throws its own trouble as UnavailableError already.
    const failure = err instanceof UnavailableError ? err : new UnavailableError('database', err)
    for (const p of batch) {
      p.reject(failure)
      // Answered 503 already; whatever happens next is quiet.
      p.resolve = settled
      p.reject = settled
    }
    if (isRowError(err)) return // refused for good: never answered 201, dropped
    this.#pending.unshift(...batch)
    this.#backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, this.#backoffMs * 2))
  }
}
