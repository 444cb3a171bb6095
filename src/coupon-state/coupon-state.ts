/**
 * A coupon's state in Redis, as the gate keeps it: creating it, changing its
 * rules, running a script on it, and rebuilding it from the database when it is
 * missing (first use, Redis restarted without persistence, FLUSHALL, failover).
 * The layout (keys, scripts, codes, stream entries) is docs/architecture.md's
 * "Coupon state in Redis".
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { CouponRules, Win } from '../domain/coupon.js'
import { UnavailableError } from '../domain/errors.js'
import { rankHoles } from '../gate/stock-gate.js'
import { isReady, type RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { CODES } from './codes.js'
import { readQueuedWins } from './entries.js'
import type { GateSource } from './gate-source.js'
import { type CouponKeys, PERSIST_GROUP, type RedisKeys } from './keys.js'
import { scripts } from './scripts.js'

/** The rebuild lock outlives any rebuild; a crashed rebuilder's lock expires. */
const LOCK_TTL_MS = 30_000
/** How long a caller waits for another node's rebuild before answering 503. */
const REBUILD_WAIT_MS = 10_000
const CHUNK = 1000
const CODES_CHUNK = 10_000

export interface CouponStateOptions {
  client: RedisClient
  keys: RedisKeys
  /** where a missing state is rebuilt from */
  source: GateSource
  onRebuild?: (couponId: number, winners: number) => void
}

export class CouponState {
  readonly client: RedisClient
  readonly keys: RedisKeys
  readonly #source: GateSource
  readonly #onRebuild: (couponId: number, winners: number) => void
  readonly #rebuilding = new Map<number, Promise<boolean>>()

  constructor(options: CouponStateOptions) {
    this.client = options.client
    this.keys = options.keys
    this.#source = options.source
    this.#onRebuild = options.onRebuild ?? (() => {})
  }

  /** Throws UnavailableError unless the client can send a command now. */
  assertReady() {
    if (!isReady(this.client))
      throw new UnavailableError('redis', new Error(`client ${this.client.status}`))
  }

  /**
   * A coupon just created: drops whatever Redis holds under its id (left by a
   * database that was reset while Redis kept its keys) and starts it empty.
   */
  async register(rules: CouponRules): Promise<void> {
    const k = this.keys.coupon(rules.couponId)
    const meta = { start: rules.issueStart, end: rules.issueEnd, total: rules.totalQuantity ?? -1 }
    try {
      // Every key shares the coupon's hash tag: one slot, so one DEL. Dead letters
      // stay: they are a record, not state. The coupon is not yet committed when
      // this runs (see CouponService.create), so no request decides on it between
      // these commands.
      await this.client.del(
        k.meta,
        k.users,
        k.holes,
        k.stream,
        k.stagingUsers,
        k.stagingHoles,
        k.codes,
        k.stagingCodes,
      )
      await this.client.xgroup('CREATE', k.stream, PERSIST_GROUP, '0', 'MKSTREAM')
      await this.client.hset(k.meta, meta)
      await this.client.sadd(this.keys.streams, String(rules.couponId))
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  /** configure.lua: OK, NOT_LOADED or QUANTITY_BELOW_ISSUED; never loads. */
  async configure(rules: CouponRules): Promise<'OK' | 'NOT_LOADED' | 'QUANTITY_BELOW_ISSUED'> {
    this.assertReady()
    const k = this.keys.coupon(rules.couponId)
    const args = [rules.issueStart, rules.issueEnd, rules.totalQuantity ?? -1]
    const code = await scripts.configure
      .run(this.client, [k.meta, k.users], args)
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    if (code === CODES.OK) return 'OK'
    if (code === CODES.NOT_LOADED) return 'NOT_LOADED'
    if (code === CODES.QUANTITY_BELOW_ISSUED) return 'QUANTITY_BELOW_ISSUED'
    throw new Error(`configure.lua returned ${String(code)}`)
  }

  /**
   * add-codes.lua: the codes numbered from `firstSeq` on, taken in number order;
   * how many the state holds after, or NOT_LOADED. Never loads.
   */
  async appendCodes(
    couponId: number,
    firstSeq: number,
    codes: readonly string[],
  ): Promise<number | 'NOT_LOADED'> {
    this.assertReady()
    const k = this.keys.coupon(couponId)
    const reply = await scripts.addCodes
      .run(this.client, [k.meta, k.codes], [firstSeq, ...codes])
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    const held = Number(reply)
    if (held === CODES.NOT_LOADED) return 'NOT_LOADED'
    if (!(held >= 0)) throw new Error(`add-codes.lua returned ${String(reply)}`)
    return held
  }

  /**
   * Runs a script that answers NOT_LOADED when the coupon has no state; loads it
   * then and runs the script again. null: no such coupon.
   */
  async whenLoaded<T>(couponId: number, run: (k: CouponKeys) => Promise<T>): Promise<T | null> {
    this.assertReady()
    const k = this.keys.coupon(couponId)
    try {
      const first = await run(k)
      if (first !== CODES.NOT_LOADED) return first
      if (!(await this.ensureLoaded(couponId))) return null
      const second = await run(k)
      if (second === CODES.NOT_LOADED)
        throw new UnavailableError('redis', new Error('state vanished after rebuild'))
      return second
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  /**
   * Makes sure the coupon's state is in Redis, rebuilding it from the database if
   * it is not; false: no such coupon. One rebuild per coupon at a time in this
   * process. Takes the coupon's row lock: never call it holding that lock.
   */
  async ensureLoaded(couponId: number): Promise<boolean> {
    if ((await this.client.exists(this.keys.coupon(couponId).meta)) === 1) return true
    let running = this.#rebuilding.get(couponId)
    if (!running) {
      running = this.#rebuildLocked(couponId).finally(() => this.#rebuilding.delete(couponId))
      this.#rebuilding.set(couponId, running)
    }
    return running
  }

  /**
   * Rebuilds a coupon's state from the database, plus the wins still queued in its
   * stream (answered, not yet persisted). Across nodes a Redis lock admits one
   * rebuilder; the others wait for the state to appear. The database side holds
   * the coupon's row lock, so the stream worker cannot persist a win between the
   * read and the swap (it verifies every win against the gate under that lock).
   */
  async #rebuildLocked(couponId: number): Promise<boolean> {
    const k = this.keys.coupon(couponId)
    const token = randomUUID()
    const deadline = Date.now() + REBUILD_WAIT_MS
    while ((await this.client.set(k.lock, token, 'PX', LOCK_TTL_MS, 'NX')) !== 'OK') {
      if ((await this.client.exists(k.meta)) === 1) return true
      if (Date.now() > deadline)
        throw new UnavailableError(
          'redis',
          new Error(`rebuild of coupon ${couponId} is taking too long`),
        )
      await sleep(25)
    }
    try {
      return await this.#source.withCouponLocked(couponId, async ({ rules, wins, readCodes }) => {
        if (!rules) return false
        if ((await this.client.exists(k.meta)) === 1) return true
        const winners = new Map<string, Win>()
        for (const w of await readQueuedWins(this.client, k.stream, couponId))
          winners.set(w.userId, w)
        for (const w of wins) winners.set(w.userId, w) // the database wins a disagreement
        await this.#stage(k, [...winners.values()])
        await this.#stageCodes(k, readCodes)
        const args = [
          token,
          rules.issueStart,
          rules.issueEnd,
          rules.totalQuantity ?? -1,
          PERSIST_GROUP,
        ]
        const keys = [
          k.meta,
          k.users,
          k.holes,
          k.stream,
          k.lock,
          k.stagingUsers,
          k.stagingHoles,
          k.codes,
          k.stagingCodes,
        ]
        if ((await scripts.load.run(this.client, keys, args)) !== CODES.OK) {
          throw new UnavailableError(
            'redis',
            new Error(`lost the rebuild lock of coupon ${couponId}`),
          )
        }
        await this.client.sadd(this.keys.streams, String(couponId))
        this.#onRebuild(couponId, winners.size)
        return true
      })
    } finally {
      await scripts.unlock.run(this.client, [k.lock], [token]).catch(() => {})
    }
  }

  /** The partner codes, read from the database in number order, staged in chunks. */
  async #stageCodes(k: CouponKeys, readCodes: (fromSeq: number, max: number) => Promise<string[]>) {
    await this.client.del(k.stagingCodes)
    for (let seq = 1; ; ) {
      const codes = await readCodes(seq, CODES_CHUNK)
      if (codes.length === 0) return
      const fields = codes.flatMap((code, i) => [seq + i, code])
      await this.client.hset(k.stagingCodes, ...fields)
      seq += codes.length
    }
  }

  async #stage(k: CouponKeys, winners: Win[]) {
    await this.client.del(k.stagingUsers, k.stagingHoles)
    for (let i = 0; i < winners.length; i += CHUNK) {
      // As issue.lua writes a win: with the id of the request that won it, when known.
      const fields = winners
        .slice(i, i + CHUNK)
        .flatMap((w) => [
          w.userId,
          w.requestId ? `${w.rank}:${w.issuedAt}:${w.requestId}` : `${w.rank}:${w.issuedAt}`,
        ])
      await this.client.hset(k.stagingUsers, ...fields)
    }
    const holes = rankHoles(winners.map((w) => w.rank))
    for (let i = 0; i < holes.length; i += CHUNK) {
      const members = holes.slice(i, i + CHUNK).flatMap((r) => [r, String(r)])
      await this.client.zadd(k.stagingHoles, ...members)
    }
  }
}
