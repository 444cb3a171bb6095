/**
 * CouponEvents over Redis pub/sub: every API node drops its cached copy of a
 * coupon the moment an admin changes it. Pub/sub is at-most-once, so after the
 * subscriber reconnects every listener hears `null` ("forget everything"), and
 * the cache's TTL bounds what a notice lost any other way can cost.
 *
 * "The change takes effect for the next request on every node": delivery is
 * asynchronous, so a node could serve a request from its stale copy (a SOLD_OUT
 * after the quantity was raised) just after the admin got the PATCH's answer.
 * So each notice carries an id; every node acknowledges it (INCR of a key named
 * after it) once its listeners have run, and `publish` waits, up to ACK_WAIT_MS,
 * until as many nodes have acknowledged as PUBLISH said received it.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { closeRedis, type RedisClient } from '../redis/connection.js'
import type { CouponEvents } from './coupon-events.js'

/** Past this a node that does not acknowledge (hung, or not a firstcome node) is not waited for. */
const ACK_WAIT_MS = 500
const ACK_POLL_MS = 2
const ACK_TTL_MS = 60_000

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
      // "<couponId> <notice id>"; a bare "<couponId>" (no acknowledgement) is read too.
      const [idText = '', notice] = message.split(' ')
      const id = Number(idText)
      if (!Number.isSafeInteger(id)) return
      this.#emit(id)
      if (notice) this.#acknowledge(notice)
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
    const notice = randomUUID()
    const receivers = Number(await this.#publisher.publish(this.#channel, `${couponId} ${notice}`))
    // On Redis Cluster the reply counts only the subscribers of the node that took
    // the PUBLISH, so there this waits for fewer nodes than it could.
    await this.#awaitAcknowledgements(notice, receivers).catch(() => {})
  }

  /** Best effort: the notice is out; failing to count the acknowledgements changes nothing. */
  async #awaitAcknowledgements(notice: string, receivers: number) {
    const key = this.#ackKey(notice)
    const deadline = Date.now() + ACK_WAIT_MS
    while (Number(await this.#publisher.get(key)) < receivers && Date.now() < deadline) {
      await sleep(ACK_POLL_MS)
    }
    await this.#publisher.del(key)
  }

  subscribe(listener: (couponId: number | null) => void): void {
    this.#listeners.push(listener)
  }

  async close(): Promise<void> {
    this.#listeners.length = 0
    await closeRedis(this.#subscriber)
  }

  #emit(couponId: number | null) {
    for (const listener of this.#listeners) listener(couponId)
  }

  #ackKey(notice: string) {
    return `${this.#channel}:ack:${notice}`
  }

  /** Best effort: a lost acknowledgement only makes the publisher wait ACK_WAIT_MS. */
  #acknowledge(notice: string) {
    const key = this.#ackKey(notice)
    this.#publisher
      .incr(key)
      .then(() => this.#publisher.pexpire(key, ACK_TTL_MS))
      .catch(() => {})
  }
}
