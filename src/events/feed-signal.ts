/**
 * "The feed has new events": what wakes `GET /v1/events?wait=` long polls. The
 * pump notifies after each sequencing that gave ids; a waiter wakes at once, or
 * when its wait is over. Embedded mode: in process. Redis mode: Redis pub/sub,
 * so a long poll on any API process wakes whichever process runs the pump. A
 * lost notice costs at most one wait: the waiter reads the feed again then.
 */
import type { RedisClient } from '../redis/connection.js'

export interface FeedSignal {
  notify(): void
  /** Resolves at the next notice or after `ms`, whichever is first; `abort` ends it early. */
  next(ms: number, abort?: AbortSignal): Promise<void>
  close(): Promise<void>
}

export class MemoryFeedSignal implements FeedSignal {
  #waiters = new Set<() => void>()

  notify(): void {
    const waiters = this.#waiters
    this.#waiters = new Set()
    for (const wake of waiters) wake()
  }

  next(ms: number, abort?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#waiters.delete(done)
        abort?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#waiters.add(done)
      abort?.addEventListener('abort', done, { once: true })
    })
  }

  async close(): Promise<void> {
    this.notify()
  }
}

/** Over Redis pub/sub: `subscriber` is a connection in subscribe mode (it may share one). */
export class RedisFeedSignal implements FeedSignal {
  readonly #local = new MemoryFeedSignal()
  readonly #publisher: RedisClient
  readonly #subscriber: RedisClient
  readonly #channel: string
  readonly #onMessage = (channel: string) => {
    if (channel === this.#channel) this.#local.notify()
  }

  constructor(publisher: RedisClient, subscriber: RedisClient, channel: string) {
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#channel = channel
    subscriber.on('message', this.#onMessage)
  }

  async start(): Promise<void> {
    await this.#subscriber.subscribe(this.#channel)
  }

  notify(): void {
    this.#local.notify()
    this.#publisher.publish(this.#channel, '1').catch(() => {})
  }

  next(ms: number, abort?: AbortSignal): Promise<void> {
    return this.#local.next(ms, abort)
  }

  async close(): Promise<void> {
    this.#subscriber.off('message', this.#onMessage)
    await this.#local.close()
  }
}
