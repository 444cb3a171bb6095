/**
 * Which stream workers are alive, across every host: each worker stamps its name
 * in one sorted set every second while it runs (Heartbeats.beat, from a timer of
 * the worker's, so a pass held up by a long transaction or WORKER_PERSIST_DELAY_MS
 * does not look like a death); a name not stamped for ALIVE_MS is a worker gone,
 * and other workers take over what it left pending (RedisStreamWorker).
 */
import type { RedisClient } from '../redis/connection.js'

export const BEAT_EVERY_MS = 1000
export const ALIVE_MS = 15_000

export class Heartbeats {
  readonly #client: RedisClient
  readonly #key: string
  #lastBeat = 0

  constructor(client: RedisClient, key: string) {
    this.#client = client
    this.#key = key
  }

  /** Stamps `member` as alive now; a failure is the worker's pass's to report. */
  beat(member: string): void {
    const now = Date.now()
    if (now - this.#lastBeat < BEAT_EVERY_MS) return
    this.#lastBeat = now
    this.#client.zadd(this.#key, now, member).catch(() => {})
  }

  /** How many members were stamped within ALIVE_MS (and forgets the others). */
  async alive(): Promise<number> {
    const since = Date.now() - ALIVE_MS
    await this.#client.zremrangebyscore(this.#key, '-inf', `(${since}`)
    return this.#client.zcount(this.#key, since, '+inf')
  }

  /** The members stamped within ALIVE_MS. */
  async aliveMembers(): Promise<Set<string>> {
    const since = Date.now() - ALIVE_MS
    return new Set(await this.#client.zrangebyscore(this.#key, since, '+inf'))
  }
}
