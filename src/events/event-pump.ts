/**
 * The event pump: one per deployment at a time (the `events` lease in the
 * database). Every `firstcome serve` and `firstcome worker` runs one; the lease
 * holder
 *   - sequences committed events (feed.ts) and wakes the feed's long polls,
 *   - delivers each webhook endpoint its events, in batches of up to 100, in
 *     order, each endpoint on its own (one that hangs holds back no other),
 *     retrying a failed batch with exponential backoff and jitter for
 *     WEBHOOK_RETRY_FOR_MS (24 h), after which the endpoint is `failing` and
 *     skipped until re-enabled.
 * Everything it knows is in the database (each endpoint's cursor, attempts and
 * next attempt), so a holder killed at any moment is replaced, once its lease
 * expires, by one that resumes where the cursors stand: a batch in flight at
 * the kill is sent again (at least once), nothing is lost.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import type { Db } from '../db/database.js'
import type { Metrics } from '../ops/metrics.js'
import { SEQUENCE_BATCH, sequence } from './feed.js'
import type { FeedSignal } from './feed-signal.js'
import { releaseLease, tryLease } from './lease.js'
import { batchesOf, CursorMoves } from './webhook-batches.js'
import { type HostAllowList, urlProblem, WebhookPoster } from './webhook-delivery.js'
import { listWebhooks, recordFailure, type Webhook } from './webhooks-repo.js'

export const LEASE_NAME = 'events'
/** events read per query, POSTed WEBHOOK_BATCH (100) at a time */
const READ_AHEAD = 1000
/** an endpoint's cursor is written at most this often while it is delivered to */
const CURSOR_SPACING_MS = 100
const WARN_EVERY_MS = 10_000
/** how long a stop waits for the POSTs in flight to be answered before it cuts them */
const STOP_WAIT_MS = 2000

export interface WebhookSettings {
  /** connect + answer, per POST */
  timeoutMs: number
  /** retry a failing endpoint this long, then mark it failing */
  retryForMs: number
  /** first retry after about this; doubling up to retryMaxMs */
  retryBaseMs: number
  retryMaxMs: number
}

export interface EventPumpOptions {
  db: Db
  signal: FeedSignal
  webhooks: WebhookSettings
  /**
   * WEBHOOK_ALLOWED_HOSTS, checked again before each endpoint's run: an endpoint
   * registered before the list was set or narrowed gets nothing (null: any host)
   */
  allowedHosts?: HostAllowList | undefined
  /** the lease's time to live; a dead holder is replaced after this */
  leaseMs: number
  /** how often the holder looks for new events when idle */
  tickMs: number
  metrics?: Metrics | undefined
  logger?: Logger | undefined
  /** who holds the lease (default: a random id) */
  holder?: string
}

/** The delay before attempt `attempts + 1`: base·2^(attempts−1), capped, half of it random. */
export function backoffMs(attempts: number, s: WebhookSettings, random = Math.random): number {
  const full = Math.min(s.retryMaxMs, s.retryBaseMs * 2 ** Math.min(attempts - 1, 30))
  return Math.round(full / 2 + (random() * full) / 2)
}

export class EventPump {
  readonly #o: EventPumpOptions
  readonly holder: string
  readonly #inFlight = new Map<number, Promise<void>>()
  #running = false
  #loop: Promise<void> | null = null
  #wake: (() => void) | null = null
  #holding = false
  #leaseCheckedAt = 0
  #warnedAt = 0
  #poster = new WebhookPoster()
  /** lists of the endpoints asked for so far */
  #lists = 0
  /** each endpoint's last run ended while this many lists had been asked for */
  readonly #endedAt = new Map<number, number>()

  constructor(options: EventPumpOptions) {
    this.#o = options
    this.holder = options.holder ?? `${process.pid}-${randomUUID()}`
  }

  /** Whether this process holds the lease (as of its last renewal). */
  get holding(): boolean {
    return this.#holding
  }

  start(): this {
    if (this.#running) return this
    this.#running = true
    this.#loop = this.#run()
    return this
  }

  async stop(): Promise<void> {
    if (!this.#running) return
    this.#running = false
    this.#wake?.()
    await this.#loop
    // Each run ends after the POST it has in flight. One answered within a
    // moment moves its cursor (its batch is not sent again); one still
    // unanswered then is cut, not waited out for WEBHOOK_TIMEOUT_MS, and the
    // next dispatcher sends its batch again (at least once).
    const runs = Promise.allSettled(this.#inFlight.values())
    const wait = Math.min(STOP_WAIT_MS, this.#o.webhooks.timeoutMs)
    await Promise.race([runs, sleep(wait, undefined, { ref: false })])
    // Its kept-alive connections closed (cutting a POST still in flight); a new
    // one for a start after this.
    const poster = this.#poster
    this.#poster = new WebhookPoster()
    await poster.close()
    await runs
    if (this.#holding) await releaseLease(this.#o.db, LEASE_NAME, this.holder).catch(() => {})
    this.#holding = false
  }

  async #run() {
    while (this.#running) {
      let busy = false
      try {
        busy = await this.#pass()
      } catch (err) {
        // Once in a while, not every tick, while the database is away.
        if (Date.now() - this.#warnedAt >= WARN_EVERY_MS) {
          this.#warnedAt = Date.now()
          this.#o.logger?.warn({ err }, 'event pump pass failed; retrying')
        }
      }
      if (!busy && this.#running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.#o.tickMs)
          this.#wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        this.#wake = null
      }
    }
  }

  /** One pass; true: there is more to do at once. */
  async #pass(): Promise<boolean> {
    const now = Date.now()
    // Renew at a third of the TTL; between renewals the holder trusts its lease.
    if (!this.#holding || now - this.#leaseCheckedAt >= this.#o.leaseMs / 3) {
      this.#holding = await tryLease(this.#o.db, LEASE_NAME, this.holder, this.#o.leaseMs, now)
      this.#leaseCheckedAt = now
    }
    if (!this.#holding) return false
    const sequenced = await sequence(this.#o.db)
    if (sequenced > 0) this.#o.signal.notify()
    await this.#dispatch(now)
    return sequenced >= SEQUENCE_BATCH
  }

  async #dispatch(now: number) {
    const list = ++this.#lists
    const hooks = await listWebhooks(this.#o.db)
    for (const w of hooks) {
      if (w.state !== 'active' || w.nextAttemptAt > now || this.#inFlight.has(w.id)) continue
      // A run that ended while this list was read may have moved the cursor, or
      // recorded a failure, after the list's read: the next list has it right.
      if ((this.#endedAt.get(w.id) ?? 0) >= list) continue
      const run = this.#deliver(w)
        .catch((err) => this.#o.logger?.warn({ err, webhook: w.id }, 'webhook delivery failed'))
        .finally(() => {
          this.#inFlight.delete(w.id)
          this.#endedAt.set(w.id, this.#lists)
        })
      this.#inFlight.set(w.id, run)
    }
  }

  /**
   * Delivers the endpoint's batches while they succeed and there are more, one
   * POST at a time. The next batch is read and built while a POST is in flight
   * (batchesOf), and the cursor moves are written behind the POSTs
   * (CursorMoves); all are written before a failure is recorded or the run
   * ends. A dispatcher that dies meanwhile sends again what it had not yet
   * recorded: at least once.
   */
  async #deliver(start: Webhook) {
    const { db } = this.#o
    const label = { webhook: String(start.id) }
    const headers = { 'firstcome-webhook-id': String(start.id) }
    let w = start
    // Its URL against the allow-list of now (it may have been set or narrowed
    // since the endpoint was registered): refused, each batch due is a failed
    // attempt, not a POST.
    const refused = urlProblem(start.url, this.#o.allowedHosts ?? null)
    const moves = new CursorMoves(db, start.id, start.deliveredSeq, CURSOR_SPACING_MS)
    const batches = batchesOf(db, start, READ_AHEAD)
    let next = batches.next()
    try {
      // stale: the cursor was elsewhere (deleted, or another dispatcher moved it)
      while (this.#running && this.#holding && !moves.stale) {
        const { value: batch, done } = await next
        if (done) break
        if (batch.body === null) {
          moves.move(batch.to, null)
          next = batches.next()
          continue
        }
        const at = Date.now()
        const posting =
          refused === null
            ? this.#poster.post(w.url, batch.body, w.secret, headers, this.#o.webhooks.timeoutMs)
            : Promise.resolve({ ok: false, status: null, error: refused })
        // Read while the POST is in flight: a read failing meanwhile is thrown
        // when awaited, not left a rejection nobody handles (the process ends).
        next = batches.next()
        next.catch(() => {})
        const outcome = await posting
        // Cut by a stop: not the endpoint's failure. The cursor stays before it.
        if (!outcome.ok && !this.#running) break
        if (!outcome.ok) {
          this.#o.metrics?.webhookDeliveries.inc({ ...label, outcome: 'failed' })
          if (refused !== null)
            this.#o.logger?.warn({ webhook: w.id, error: refused }, 'webhook not sent')
          if (!(await moves.written())) return
          await this.#failed(w, moves.cursor, outcome.status, outcome.error ?? 'failed', at)
          return
        }
        this.#o.metrics?.webhookDeliveries.inc({ ...label, outcome: 'delivered' })
        this.#o.metrics?.webhookEvents.inc(label, batch.events)
        moves.move(batch.to, { status: outcome.status ?? 200, at })
        w = { ...w, attempts: 0, failingSince: null }
      }
      await moves.written()
    } finally {
      next.catch(() => {}) // a batch read ahead and not sent
      await moves.written().catch(() => {}) // a failed read: the moves made, written first
    }
  }

  /** A failed attempt that started at `at`; the wait before the next one counts from now, its end. */
  async #failed(w: Webhook, from: number, status: number | null, error: string, at: number) {
    const attempts = w.attempts + 1
    const failingSince = w.failingSince ?? at
    const failing = at - failingSince >= this.#o.webhooks.retryForMs
    await recordFailure(this.#o.db, w.id, {
      from,
      attempts,
      nextAttemptAt: Date.now() + backoffMs(attempts, this.#o.webhooks),
      failingSince,
      failing,
      status,
      error,
      at,
    })
    if (failing) {
      this.#o.logger?.error(
        { event: 'webhook.failing', webhook: w.id, error },
        'webhook endpoint failing: retried for the whole retry period; skipped until re-enabled',
      )
    }
  }
}
