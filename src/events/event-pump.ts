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
import { feedHead, readFeed, SEQUENCE_BATCH, sequence } from './feed.js'
import type { FeedSignal } from './feed-signal.js'
import { releaseLease, tryLease } from './lease.js'
import { postSigned } from './webhook-delivery.js'
import { advance, listWebhooks, recordFailure, type Webhook } from './webhooks-repo.js'

export const LEASE_NAME = 'events'
export const WEBHOOK_BATCH = 100

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
        this.#o.logger?.warn({ err }, 'event pump pass failed; retrying')
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

  /** Delivers the endpoint's batches while they come full and succeed. */
  async #deliver(start: Webhook) {
    const { db } = this.#o
    let cursor = start.deliveredSeq
    while (this.#running && this.#holding) {
      const head = await feedHead(db)
      if (head <= cursor) return
      const events = await readFeed(db, {
        after: cursor,
        limit: WEBHOOK_BATCH,
        types: start.types,
        upTo: head,
      })
      // A short batch holds everything of its types up to head: the cursor may
      // pass the events of other types too.
      const to = events.length < WEBHOOK_BATCH ? head : (events.at(-1)?.id ?? head)
      if (events.length === 0) {
        await advance(db, start.id, cursor, to, null)
        return
      }
      const body = JSON.stringify({ webhookId: start.id, events })
      const at = Date.now()
      const outcome = await postSigned(
        start.url,
        body,
        start.secret,
        { 'firstcome-webhook-id': String(start.id) },
        this.#o.webhooks.timeoutMs,
      )
      const label = { webhook: String(start.id) }
      if (outcome.ok) {
        this.#o.metrics?.webhookDeliveries.inc({ ...label, outcome: 'delivered' })
        this.#o.metrics?.webhookEvents.inc(label, events.length)
        const moved = await advance(db, start.id, cursor, to, {
          status: outcome.status ?? 200,
          at,
        })
        if (!moved) return // deleted, or another dispatcher moved it
        cursor = to
        start = { ...start, attempts: 0, failingSince: null }
        continue
      }
      this.#o.metrics?.webhookDeliveries.inc({ ...label, outcome: 'failed' })
      const attempts = start.attempts + 1
      const failingSince = start.failingSince ?? at
      const failing = at - failingSince >= this.#o.webhooks.retryForMs
      await recordFailure(db, start.id, {
        from: cursor,
        attempts,
        nextAttemptAt: at + backoffMs(attempts, this.#o.webhooks),
        failingSince,
        failing,
        status: outcome.status,
        error: outcome.error ?? 'failed',
        at,
      })
      if (failing) {
        this.#o.logger?.error(
          { event: 'webhook.failing', webhook: start.id, error: outcome.error },
          'webhook endpoint failing: retried for the whole retry period; skipped until re-enabled',
        )
      }
      return
    }
  }
}
