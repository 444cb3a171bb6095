/**
 * The Redis StockGate: an EVALSHA of `lua/issue.lua` decides window, duplicate and
 * quantity, records the rank and appends the win to the coupon's stream,
 * atomically. The requests for a coupon that arrive in one event-loop turn are
 * decided by one call, in arrival order (see `#enqueue`): a call costs Redis more
 * than the work of one request in it, and each command costs the client too.
 *
 * When a coupon's state is missing (first use, Redis restarted without
 * persistence, FLUSHALL, failover) the scripts answer NOT_LOADED and the gate
 * rebuilds it from the database (DB ⊆ Redis) before deciding — see `#rebuild`.
 */
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { CouponRules, IssueOutcome, Refusal, Win } from '../domain/coupon.js'
import { UnavailableError } from '../domain/errors.js'
import { newRequestId } from '../domain/request-id.js'
import type { Metrics } from '../ops/metrics.js'
import { isReady, type RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { type CouponKeys, PERSIST_GROUP, type RedisKeys } from '../redis/keys.js'
import { type LuaReply, LuaScript } from '../redis/lua-script.js'
import { readQueuedWins } from '../redis/stream-entries.js'
import type { GateSource } from './gate-source.js'
import { type ConfigureResult, rankHoles, type StockGate } from './stock-gate.js'

const scripts = {
  issue: new LuaScript(new URL('./lua/issue.lua', import.meta.url)),
  configure: new LuaScript(new URL('./lua/configure.lua', import.meta.url)),
  peek: new LuaScript(new URL('./lua/peek.lua', import.meta.url)),
  load: new LuaScript(new URL('./lua/load.lua', import.meta.url)),
  unlock: new LuaScript(new URL('./lua/unlock.lua', import.meta.url)),
}

const NOT_LOADED = -1
const ISSUE_REFUSALS: Record<number, Refusal> = {
  [-2]: 'ISSUE_NOT_STARTED',
  [-3]: 'ISSUE_ENDED',
  [-4]: 'ALREADY_ISSUED',
  [-5]: 'SOLD_OUT',
}

/** The rebuild lock outlives any rebuild; a crashed rebuilder's lock expires. */
const LOCK_TTL_MS = 30_000
/** How long a request waits for another node's rebuild before answering 503. */
const REBUILD_WAIT_MS = 10_000
const CHUNK = 1000
/**
 * The most requests one script call decides. Bounds how long one call holds
 * Redis (a few µs per request) and the size of one reply.
 */
const MAX_BATCH = 256

interface Waiter {
  userId: string
  now: number
  requestId: string
  resolve: (outcome: IssueOutcome) => void
  reject: (err: unknown) => void
}

export interface RedisStockGateOptions {
  client: RedisClient
  keys: RedisKeys
  source: GateSource
  onRebuild?: (couponId: number, winners: number) => void
  metrics?: Metrics
}

export class RedisStockGate implements StockGate {
  readonly kind = 'redis'
  readonly #client: RedisClient
  readonly #keys: RedisKeys
  readonly #source: GateSource
  readonly #onRebuild: (couponId: number, winners: number) => void
  readonly #metrics: Metrics | undefined
  readonly #rebuilding = new Map<number, Promise<boolean>>()
  /** This turn's requests, per coupon; sent when the turn's I/O is done. */
  #batches = new Map<number, Waiter[]>()
  #sendScheduled = false

  constructor(options: RedisStockGateOptions) {
    this.#client = options.client
    this.#keys = options.keys
    this.#source = options.source
    this.#onRebuild = options.onRebuild ?? (() => {})
    this.#metrics = options.metrics
  }

  tryIssue(
    couponId: number,
    userId: string,
    now: number,
    requestId: string = newRequestId(),
  ): Promise<IssueOutcome> {
    return new Promise((resolve, reject) =>
      this.#enqueue(couponId, { userId, now, requestId, resolve, reject }),
    )
  }

  /**
   * Joins the coupon's batch for this turn. The first request of a turn schedules
   * the send with setImmediate: it runs once the turn's I/O callbacks (every
   * request read in this turn) are done. A full batch goes at once.
   */
  #enqueue(couponId: number, waiter: Waiter) {
    let batch = this.#batches.get(couponId)
    if (!batch) {
      if (!this.#sendScheduled) {
        this.#sendScheduled = true
        setImmediate(this.#sendAll)
      }
      batch = []
      this.#batches.set(couponId, batch)
    }
    batch.push(waiter)
    if (batch.length >= MAX_BATCH) {
      this.#batches.delete(couponId)
      this.#decide(couponId, batch)
    }
  }

  readonly #sendAll = () => {
    const batches = this.#batches
    this.#batches = new Map()
    this.#sendScheduled = false
    for (const [couponId, batch] of batches) this.#decide(couponId, batch)
  }

  #decide(couponId: number, waiters: Waiter[]) {
    const args: (string | number)[] = []
    for (const w of waiters) args.push(w.userId, w.now, w.requestId)
    const started = performance.now()
    this.#loaded(couponId, (k) =>
      scripts.issue.runNow(this.#client, [k.meta, k.users, k.holes, k.stream], args),
    ).then(
      (codes) => {
        this.#metrics?.gateDecided(started, waiters.length)
        if (codes === null) {
          for (const w of waiters) w.resolve({ won: false, refusal: 'COUPON_NOT_FOUND' })
          return
        }
        if (!Array.isArray(codes) || codes.length !== waiters.length) {
          const err = new Error(
            `issue.lua answered ${waiters.length} requests with ${String(codes)}`,
          )
          for (const w of waiters) w.reject(err)
          return
        }
        for (let i = 0; i < waiters.length; i++) settle(couponId, waiters[i] as Waiter, codes[i])
      },
      (err: unknown) => {
        this.#metrics?.gateFailed(err)
        for (const w of waiters) w.reject(err)
      },
    )
  }

  async register(rules: CouponRules): Promise<void> {
    const k = this.#keys.coupon(rules.couponId)
    const meta = { start: rules.issueStart, end: rules.issueEnd, total: rules.totalQuantity ?? -1 }
    try {
      // Every key shares the coupon's hash tag: one slot, so one DEL. Dead letters
      // stay: they are a record, not state. The coupon is not yet committed when
      // this runs (see CouponService.create), so no request decides on it between
      // these commands.
      await this.#client.del(k.meta, k.users, k.holes, k.stream, k.stagingUsers, k.stagingHoles)
      await this.#client.xgroup('CREATE', k.stream, PERSIST_GROUP, '0', 'MKSTREAM')
      await this.#client.hset(k.meta, meta)
      await this.#client.sadd(this.#keys.streams, String(rules.couponId))
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  async configure(rules: CouponRules): Promise<ConfigureResult> {
    if (!isReady(this.#client))
      throw new UnavailableError('redis', new Error(`client ${this.#client.status}`))
    const k = this.#keys.coupon(rules.couponId)
    const args = [rules.issueStart, rules.issueEnd, rules.totalQuantity ?? -1]
    const code = await scripts.configure
      .run(this.#client, [k.meta, k.users], args)
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    if (Number(code) === 0) return 'OK'
    if (Number(code) === NOT_LOADED) return 'NOT_LOADED'
    if (Number(code) === -2) return 'QUANTITY_BELOW_ISSUED'
    throw new Error(`configure.lua returned ${String(code)}`)
  }

  async lookup(couponId: number, userId: string): Promise<Win | null> {
    const reply = await this.#loaded(couponId, (k) =>
      scripts.peek.run(this.#client, [k.meta, k.users], [userId]),
    )
    return winOf(couponId, userId, reply)
  }

  async lookupLoaded(couponId: number, userId: string): Promise<Win | null | 'NOT_LOADED'> {
    if (!isReady(this.#client))
      throw new UnavailableError('redis', new Error(`client ${this.#client.status}`))
    const k = this.#keys.coupon(couponId)
    const reply = await scripts.peek
      .run(this.#client, [k.meta, k.users], [userId])
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    return reply === NOT_LOADED ? 'NOT_LOADED' : winOf(couponId, userId, reply)
  }

  async won(couponId: number): Promise<number> {
    const reply = await this.#loaded(couponId, (k) =>
      scripts.peek.run(this.#client, [k.meta, k.users], ['']),
    )
    return Array.isArray(reply) ? Number(reply[0]) : 0
  }

  async ping(): Promise<void> {
    await this.#client.ping()
  }

  async close(): Promise<void> {
    await this.#client.quit().catch(() => this.#client.disconnect())
  }

  /**
   * Runs a script that answers NOT_LOADED (-1) when the coupon has no state;
   * rebuilds it then and runs the script again. null: no such coupon.
   */
  async #loaded<T>(couponId: number, run: (k: CouponKeys) => Promise<T>): Promise<T | null> {
    if (!isReady(this.#client))
      throw new UnavailableError('redis', new Error(`client ${this.#client.status}`))
    const k = this.#keys.coupon(couponId)
    try {
      const first = await run(k)
      if (first !== NOT_LOADED) return first
      if (!(await this.#rebuild(couponId))) return null
      const second = await run(k)
      if (second === NOT_LOADED)
        throw new UnavailableError('redis', new Error('state vanished after rebuild'))
      return second
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  /** One rebuild per coupon at a time in this process; true if the coupon exists. */
  #rebuild(couponId: number): Promise<boolean> {
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
    const k = this.#keys.coupon(couponId)
    const token = randomUUID()
    const deadline = Date.now() + REBUILD_WAIT_MS
    while ((await this.#client.set(k.lock, token, 'PX', LOCK_TTL_MS, 'NX')) !== 'OK') {
      if ((await this.#client.exists(k.meta)) === 1) return true
      if (Date.now() > deadline)
        throw new UnavailableError(
          'redis',
          new Error(`rebuild of coupon ${couponId} is taking too long`),
        )
      await sleep(25)
    }
    try {
      return await this.#source.withCouponLocked(couponId, async ({ rules, wins }) => {
        if (!rules) return false
        if ((await this.#client.exists(k.meta)) === 1) return true
        const winners = new Map<string, Win>()
        for (const w of await readQueuedWins(this.#client, k.stream, couponId))
          winners.set(w.userId, w)
        for (const w of wins) winners.set(w.userId, w) // the database wins a disagreement
        await this.#stage(k, [...winners.values()])
        const args = [
          token,
          rules.issueStart,
          rules.issueEnd,
          rules.totalQuantity ?? -1,
          PERSIST_GROUP,
        ]
        const keys = [k.meta, k.users, k.holes, k.stream, k.lock, k.stagingUsers, k.stagingHoles]
        if (Number(await scripts.load.run(this.#client, keys, args)) !== 0) {
          throw new UnavailableError(
            'redis',
            new Error(`lost the rebuild lock of coupon ${couponId}`),
          )
        }
        await this.#client.sadd(this.#keys.streams, String(couponId))
        this.#onRebuild(couponId, winners.size)
        return true
      })
    } finally {
      await scripts.unlock.run(this.#client, [k.lock], [token]).catch(() => {})
    }
  }

  async #stage(k: CouponKeys, winners: Win[]) {
    await this.#client.del(k.stagingUsers, k.stagingHoles)
    for (let i = 0; i < winners.length; i += CHUNK) {
      const fields = winners
        .slice(i, i + CHUNK)
        .flatMap((w) => [w.userId, `${w.rank}:${w.issuedAt}`])
      await this.#client.hset(k.stagingUsers, ...fields)
    }
    const holes = rankHoles(winners.map((w) => w.rank))
    for (let i = 0; i < holes.length; i += CHUNK) {
      const members = holes.slice(i, i + CHUNK).flatMap((r) => [r, String(r)])
      await this.#client.zadd(k.stagingHoles, ...members)
    }
  }
}

/** peek.lua's answer for one user: `[wins, "<rank>:<issuedAt>" or false]`. */
function winOf(couponId: number, userId: string, reply: LuaReply | null): Win | null {
  const value = Array.isArray(reply) ? reply[1] : null
  if (typeof value !== 'string') return null
  const [rank, issuedAt] = value.split(':')
  return { couponId, userId, rank: Number(rank), issuedAt: Number(issuedAt) }
}

function settle(couponId: number, w: Waiter, reply: LuaReply | undefined) {
  if (typeof reply === 'string' || reply instanceof Uint8Array) {
    // "<rank>:<issuedAt>": this request's win, decided by an earlier run (a bulk
    // string: a Buffer from runNow's raw command)
    const text = String(reply)
    const colon = text.indexOf(':')
    const rank = Number(text.slice(0, colon))
    const issuedAt = Number(text.slice(colon + 1))
    w.resolve({ won: true, win: { couponId, userId: w.userId, rank, issuedAt } })
    return
  }
  const code = Number(reply)
  if (code > 0) {
    w.resolve({ won: true, win: { couponId, userId: w.userId, rank: code, issuedAt: w.now } })
    return
  }
  const refusal = ISSUE_REFUSALS[code]
  if (refusal) w.resolve({ won: false, refusal })
  else w.reject(new Error(`issue.lua returned ${String(reply)}`))
}
