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
import type { Logger } from 'pino'
import type { Db } from '../db/database.js'
import type { Metrics } from '../ops/metrics.js'
import { readFeed, SEQUENCE_BATCH, sequence } from './feed.js'
import type { FeedSignal } from './feed-signal.js'
import { releaseLease, tryLease } from './lease.js'
import { postSigned } from './webhook-delivery.js'
import { advance, listWebhooks, recordFailure, type Webhook } from './webhooks-repo.js'

export const LEASE_NAME = 'events'
export const WEBHOOK_BATCH = 100
/** events read per query, POSTed WEBHOOK_BATCH at a time */
const READ_AHEAD = 1000
const WARN_EVERY_MS = 10_000

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
    await Promise.allSettled(this.#inFlight.values())
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
    const hooks = await listWebhooks(this.#o.db)
    for (const w of hooks) {
      if (w.state !== 'active' || w.nextAttemptAt > now || this.#inFlight.has(w.id)) continue
      const run = this.#deliver(w)
        .catch((err) => this.#o.logger?.warn({ err, webhook: w.id }, 'webhook delivery failed'))
        .finally(() => this.#inFlight.delete(w.id))
      this.#inFlight.set(w.id, run)
    }
  }

  /**
   * Delivers the endpoint's batches while they succeed and there are more. Reads
   * up to READ_AHEAD events at once and POSTs them 100 at a time, one after the
   * other; each cursor move (a compare-and-set) goes to the database while the
   * next POST is in flight, and all are done before the next read or a failure
   * is recorded. A dispatcher that dies meanwhile sends again what it had not
   * yet recorded: at least once.
   */
  async #deliver(start: Webhook) {
    const { db } = this.#o
    const label = { webhook: String(start.id) }
    const types = new Set(start.types)
    let cursor = start.deliveredSeq
    let w = start
    // Every type, filtered here: `seq > cursor order by seq limit n` is an index
    // walk on every dialect, whatever the planner knows of the table.
    const readAfter = (after: number) => {
      const reading = readFeed(db, { after, limit: READ_AHEAD })
      reading.catch(() => {}) // a read-ahead dropped after a failed POST
      return reading
    }
    let reading = readAfter(cursor)
    while (this.#running && this.#holding) {
      const read = await reading
      const end = read.at(-1)?.id
      if (end === undefined) return
      // The next read goes on while this one is POSTed.
      if (read.length === READ_AHEAD) reading = readAfter(end)
      const events = read.filter((e) => types.has(e.type))
      let moves: Promise<boolean> = Promise.resolve(true)
      if (events.length === 0) moves = advance(db, w.id, cursor, end, null)
      for (let i = 0; i < events.length; i += WEBHOOK_BATCH) {
        const batch = events.slice(i, i + WEBHOOK_BATCH)
        // The read's last batch takes the cursor past the others' events too.
        const to = i + WEBHOOK_BATCH >= events.length ? end : (batch.at(-1)?.id ?? end)
        const at = Date.now()
        const outcome = await postSigned(
          w.url,
          JSON.stringify({ webhookId: w.id, events: batch }),
          w.secret,
          { 'firstcome-webhook-id': String(w.id) },
          this.#o.webhooks.timeoutMs,
        )
        if (!outcome.ok) {
          this.#o.metrics?.webhookDeliveries.inc({ ...label, outcome: 'failed' })
          if (!(await moves)) return
          await this.#failed(w, cursor, outcome.status, outcome.error ?? 'failed', at)
          return
        }
        this.#o.metrics?.webhookDeliveries.inc({ ...label, outcome: 'delivered' })
        this.#o.metrics?.webhookEvents.inc(label, batch.length)
        const from = cursor
        const status = outcome.status ?? 200
        moves = moves.then((ok) => ok && advance(db, w.id, from, to, { status, at }))
        cursor = to
        w = { ...w, attempts: 0, failingSince: null }
      }
      // false: deleted, or another dispatcher moved it
      if (!(await moves)) return
      cursor = end
      if (read.length < READ_AHEAD) return
    }
  }

  async #failed(w: Webhook, from: number, status: number | null, error: string, at: number) {
    const attempts = w.attempts + 1
    const failingSince = w.failingSince ?? at
    const failing = at - failingSince >= this.#o.webhooks.retryForMs
    await recordFailure(this.#o.db, w.id, {
      from,
      attempts,
      nextAttemptAt: at + backoffMs(attempts, this.#o.webhooks),
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
