/**
 * CouponEvents over Redis pub/sub: every API node drops its cached copy of a
 * coupon the moment an admin changes it. Pub/sub is at-most-once, so after the
 * subscriber reconnects every listener hears `null` ("forget everything"), and
 * the cache's TTL bounds what a notice lost any other way can cost.
 */
import type { RedisClient } from '../redis/connection.js'
import type { CouponEvents } from './coupon-events.js'

export class RedisCouponEvents implements CouponEvents {
  readonly #publisher: RedisClient
  readonly #subscriber: RedisClient
  readonly #channel: string
  readonly #listeners: ((couponId: number | null) => void)[] = []

  /** `subscriber` must be a connection of its own (it enters subscribe mode). */
  constructor(publisher: RedisClient, subscriber: RedisClient, channel: string) {
    this.#publisher = publisher
    this.#subscriber = subscriber
    this.#channel = channel
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return
      const id = Number(message)
      if (Number.isSafeInteger(id)) this.#emit(id)
    })
    let first = true
    subscriber.on('ready', () => {
      if (!first) this.#emit(null)
      first = false
    })
  }

  async start(): Promise<void> {
    await this.#subscriber.subscribe(this.#channel)
  }

  async publish(couponId: number): Promise<void> {
    // This node at once, the others through Redis (this one hears it again: harmless).
    this.#emit(couponId)
    await this.#publisher.publish(this.#channel, String(couponId))
  }

  subscribe(listener: (couponId: number | null) => void): void {
    this.#listeners.push(listener)
  }

  async close(): Promise<void> {
    this.#listeners.length = 0
    await this.#subscriber.quit().catch(() => this.#subscriber.disconnect())
  }

  #emit(couponId: number | null) {
    for (const listener of this.#listeners) listener(couponId)
  }
}
