/**
 * Where each webhook endpoint stands (its lag, last status and error): for the
 * API's GET /v1/webhooks, /metrics and the dashboard. Read from the database,
 * so every process shows the same, whichever holds the dispatcher's lease; at
 * most once a second per process.
 */
import { Gauge, type Registry } from 'prom-client'
import type { Db } from '../db/database.js'
import { type Lag, lagOf, listWebhooks, type Webhook } from './webhooks-repo.js'

export interface WebhookStatus {
  webhook: Webhook
  lag: Lag
}

export class WebhookStatuses {
  readonly #db: Db
  #last = { at: 0, value: Promise.resolve([] as WebhookStatus[]) }

  constructor(db: Db) {
    this.#db = db
  }

  /** Fresh within a second. */
  get(): Promise<WebhookStatus[]> {
    if (Date.now() - this.#last.at >= 1000) {
      const value = this.#read()
      this.#last = { at: Date.now(), value }
      value.catch(() => {
        this.#last = { at: 0, value: Promise.resolve([]) }
      })
    }
    return this.#last.value
  }

  /** Read now (an admin's own request after a change). */
  fresh(): Promise<WebhookStatus[]> {
    this.#last = { at: 0, value: this.#last.value }
    return this.get()
  }

  async #read(): Promise<WebhookStatus[]> {
    const hooks = await listWebhooks(this.#db)
    return Promise.all(
      hooks.map(async (webhook) => ({ webhook, lag: await lagOf(this.#db, webhook) })),
    )
  }
}

/** firstcome_webhook_lag_events, _lag_seconds and _failing, per endpoint. */
export function webhookGauges(registry: Registry, statuses: WebhookStatuses): void {
  const figures: [string, string, (s: WebhookStatus) => number][] = [
    ['lag_events', "Events of the endpoint's types not yet delivered to it", (s) => s.lag.events],
    [
      'lag_seconds',
      'Age of the oldest event the endpoint has not yet had (0: none)',
      (s) => s.lag.seconds,
    ],
    [
      'failing',
      'Whether the endpoint is failing (retried for the whole period, skipped until re-enabled)',
      (s) => (s.webhook.state === 'failing' ? 1 : 0),
    ],
  ]
  for (const [name, help, value] of figures) {
    new Gauge({
      name: `firstcome_webhook_${name}`,
      help,
      labelNames: ['webhook'] as const,
      registers: [registry],
      aggregator: 'max',
      async collect() {
        const list = await statuses.get().catch(() => null)
        this.reset()
        for (const s of list ?? []) this.set({ webhook: String(s.webhook.id) }, value(s))
      },
    })
  }
}
