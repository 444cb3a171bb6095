/**
 * The API processes' figures in Redis: one string per process with a time to
 * live (Redis expires a dead process's entry, whatever the clocks of the hosts
 * say), and a set naming them, so a reader needs no SCAN. Both under one hash
 * tag, so on a Redis Cluster they share a slot and MGET reads them in one call.
 */
import type { RedisClient } from '../redis/connection.js'
import type { FleetStore, ProcessShare } from './api-fleet.js'
import type { ProcessFigures } from './process-figures.js'

/** A pipeline's replies carry their errors: the first one fails the call. */
function failed(replies: [Error | null, unknown][] | null): void {
  const err = replies?.find(([e]) => e)?.[0]
  if (err) throw err
}

export class RedisFleetStore implements FleetStore {
  readonly #client: RedisClient
  readonly #members: string
  readonly #prefix: string

  constructor(client: RedisClient, keyPrefix: string) {
    this.#client = client
    this.#prefix = `${keyPrefix}{api}:`
    this.#members = `${this.#prefix}processes`
  }

  #key(id: string) {
    return `${this.#prefix}figures:${id}`
  }

  async publish(id: string, figures: ProcessFigures, ttlMs: number): Promise<void> {
    failed(
      await this.#client
        .pipeline()
        .set(this.#key(id), JSON.stringify(figures), 'PX', ttlMs)
        .sadd(this.#members, id)
        .exec(),
    )
  }

  async live(): Promise<ProcessShare[]> {
    const ids = await this.#client.smembers(this.#members)
    if (ids.length === 0) return []
    const values = await this.#client.mget(ids.map((id) => this.#key(id)))
    const gone = ids.filter((_, i) => values[i] === null)
    // A member whose entry expired is a process gone: forget it.
    if (gone.length > 0) await this.#client.srem(this.#members, ...gone)
    return ids.flatMap((id, i) => {
      const v = values[i]
      return v ? [{ id, figures: JSON.parse(v) as ProcessFigures }] : []
    })
  }

  async leave(id: string): Promise<void> {
    failed(await this.#client.pipeline().del(this.#key(id)).srem(this.#members, id).exec())
  }
}
