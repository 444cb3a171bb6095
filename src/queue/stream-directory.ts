/**
 * Which coupon streams the workers poll: the ids in the `streams` set, which the
 * gate adds to when it loads a coupon. Every SCAN_MS the database is consulted
 * too, to pick up a stream whose set entry was lost, and to forget the streams of
 * coupons whose window closed over an hour ago (or that the database did not hold
 * at two scans in a row) and that are fully drained (so idle polling does not
 * grow with every coupon ever run).
 */

import { PERSIST_GROUP, type RedisKeys } from '../coupon-state/keys.js'
import { listAbsentCouponIds, listCouponIdsEndingAfter } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import type { RedisClient } from '../redis/connection.js'

const REFRESH_MS = 1000
const SCAN_MS = 10_000
const RETIRE_AFTER_MS = 3_600_000

export class StreamDirectory {
  readonly #client: RedisClient
  readonly #keys: RedisKeys
  readonly #db: Db
  #ids: number[] = []
  #refreshedAt = 0
  #scannedAt = 0
  /** ids the last scan found in the set but not in the database */
  #absent = new Set<number>()

  constructor(client: RedisClient, keys: RedisKeys, db: Db) {
    this.#client = client
    this.#keys = keys
    this.#db = db
  }

  /**
   * The ids to poll: the set as read at most REFRESH_MS ago, or now when `fresh`
   * (a worker with nothing to do asks so: one SMEMBERS per idle pass, and a new
   * coupon's first wins are not left waiting for the next refresh).
   */
  async couponIds(fresh = false): Promise<number[]> {
    const now = Date.now()
    if (now - this.#scannedAt >= SCAN_MS) {
      this.#scannedAt = now
      await this.#scan(now)
      this.#refreshedAt = 0
    }
    if (fresh || now - this.#refreshedAt >= REFRESH_MS) {
      this.#refreshedAt = now
      const members = await this.#client.smembers(this.#keys.streams)
      this.#ids = members.map(Number).filter((n) => Number.isSafeInteger(n) && n > 0)
    }
    return this.#ids
  }

  async #scan(now: number) {
    const current = new Set(
      await listCouponIdsEndingAfter(this.#db, new Date(now - RETIRE_AFTER_MS)),
    )
    const known = new Set((await this.#client.smembers(this.#keys.streams)).map(Number))
    for (const id of current) {
      if (!known.has(id) && (await this.#client.exists(this.#keys.coupon(id).stream)) === 1) {
        await this.#client.sadd(this.#keys.streams, String(id))
      }
    }
    // A coupon is registered with the gate (and so here) before its row is
    // committed: one missing from the database may be that new, so it is retired
    // only when the scan before this one found it missing too.
    const absent = new Set(
      known.size > 0
        ? await listAbsentCouponIds(
            this.#db,
            [...known].filter((id) => !current.has(id)),
          )
        : [],
    )
    const missedBefore = this.#absent
    this.#absent = absent
    for (const id of known) {
      if (current.has(id) || (absent.has(id) && !missedBefore.has(id))) continue
      if (await this.#drained(id)) await this.#client.srem(this.#keys.streams, String(id))
    }
  }

  async #drained(couponId: number): Promise<boolean> {
    const stream = this.#keys.coupon(couponId).stream
    if ((await this.#client.xlen(stream)) > 0) return false
    const summary = (await this.#client.xpending(stream, PERSIST_GROUP).catch(() => [0])) as [
      number,
    ]
    return Number(summary[0]) === 0
  }
}
