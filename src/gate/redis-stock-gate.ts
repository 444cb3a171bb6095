/**
 * The Redis StockGate: issue.lua decides window, duplicate and quantity, records
 * the rank and queues the win, atomically; the requests for a coupon that arrive
 * in one event-loop turn are decided by one call, in arrival order (see
 * `#enqueue`). The coupon's Redis state, and its rebuild when missing, are
 * CouponState's (src/coupon-state/).
 *
 * The window is judged by Redis's clock (TIME in the script, on the coupon's
 * node), never by this process's: `tryIssue`'s `now` is not sent, and a win is
 * stamped with the instant the script judged it by (see gate-clock.ts).
 */
import { performance } from 'node:perf_hooks'
import { CODES } from '../coupon-state/codes.js'
import type { CouponState } from '../coupon-state/coupon-state.js'
import { issueKeys } from '../coupon-state/keys.js'
import { scripts } from '../coupon-state/scripts.js'
import type { CouponRules, IssueOutcome, Refusal, Win } from '../domain/coupon.js'
import { newRequestId } from '../domain/request-id.js'
import type { Metrics } from '../ops/metrics.js'
import { toRedisFailure } from '../redis/errors.js'
import type { LuaReply } from '../redis/lua-script.js'
import type { ConfigureResult, StockGate } from './stock-gate.js'

/** The script's code of each refusal it can answer (an unknown coupon is the service's). */
const REFUSAL_CODES = {
  ISSUE_NOT_STARTED: CODES.ISSUE_NOT_STARTED,
  ISSUE_ENDED: CODES.ISSUE_ENDED,
  ALREADY_ISSUED: CODES.ALREADY_ISSUED,
  SOLD_OUT: CODES.SOLD_OUT,
} satisfies Record<Exclude<Refusal, 'COUPON_NOT_FOUND'>, number>

const ISSUE_REFUSALS: Record<number, Refusal> = Object.fromEntries(
  Object.entries(REFUSAL_CODES).map(([refusal, code]) => [code, refusal as Refusal]),
)

/**
 * The most requests one script call decides: bounds how long one call holds Redis
 * and the size of one reply.
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
  state: CouponState
  metrics?: Metrics
  /**
   * 'redis' (the default, the service's): the window is judged by Redis's TIME.
   * 'caller': by each request's `now` (tests of the window's exact edges, which
   * no real clock can hit to the millisecond).
   */
  clock?: 'redis' | 'caller'
}

export class RedisStockGate implements StockGate {
  readonly #state: CouponState
  readonly #metrics: Metrics | undefined
  readonly #callerClock: boolean
  /** This turn's requests, per coupon; sent when the turn's I/O is done. */
  #batches = new Map<number, Waiter[]>()
  #sendScheduled = false

  constructor(options: RedisStockGateOptions) {
    this.#state = options.state
    this.#metrics = options.metrics
    this.#callerClock = options.clock === 'caller'
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
    // '' for now: the script judges by Redis's clock
    const caller = this.#callerClock
    for (const w of waiters) args.push(w.userId, caller ? w.now : '', w.requestId)
    const started = performance.now()
    this.#state
      .whenLoaded(couponId, (k) => scripts.issue.runNow(this.#state.client, issueKeys(k), args))
      .then(
        (codes) => {
          this.#metrics?.gateDecided(started, waiters.length)
          if (codes === null) {
            for (const w of waiters) w.resolve({ won: false, refusal: 'COUPON_NOT_FOUND' })
            return
          }
          // { Redis's clock, one outcome per request }
          if (!Array.isArray(codes) || codes.length !== waiters.length + 1) {
            const err = new Error(
              `issue.lua answered ${waiters.length} requests with ${String(codes)}`,
            )
            for (const w of waiters) w.reject(err)
            return
          }
          const clock = Number(codes[0])
          const { recent } = this.#state
          const at = Date.now()
          for (let i = 0; i < waiters.length; i++) {
            const w = waiters[i] as Waiter
            const win = settle(couponId, w, codes[i + 1], this.#callerClock ? w.now : clock)
            // kept a few seconds, to be audited if Redis turns out to have lost it
            if (win) recent.add({ ...win, at })
          }
        },
        (err: unknown) => {
          this.#metrics?.gateFailed(err)
          for (const w of waiters) w.reject(err)
        },
      )
  }

  register(rules: CouponRules): Promise<void> {
    return this.#state.register(rules)
  }

  configure(rules: CouponRules): Promise<ConfigureResult> {
    return this.#state.configure(rules)
  }

  async lookup(couponId: number, userId: string): Promise<Win | null> {
    const reply = await this.#state.whenLoaded(couponId, (k) =>
      scripts.peek.run(this.#state.client, [k.meta, k.users], [userId]),
    )
    return winOf(couponId, userId, reply)
  }

  async lookupLoaded(couponId: number, userId: string): Promise<Win | null | 'NOT_LOADED'> {
    this.#state.assertReady()
    const k = this.#state.keys.coupon(couponId)
    const reply = await scripts.peek
      .run(this.#state.client, [k.meta, k.users], [userId])
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    return reply === CODES.NOT_LOADED ? 'NOT_LOADED' : winOf(couponId, userId, reply)
  }

  ensureLoaded(couponId: number): Promise<boolean> {
    this.#state.assertReady()
    return this.#state.ensureLoaded(couponId).catch((err: unknown) => {
      throw toRedisFailure(err)
    })
  }

  async won(couponId: number): Promise<number> {
    const reply = await this.#state.whenLoaded(couponId, (k) =>
      scripts.peek.run(this.#state.client, [k.meta, k.users], ['']),
    )
    return Array.isArray(reply) ? Number(reply[0]) : 0
  }

  async ping(): Promise<void> {
    await this.#state.client.ping()
  }

  async close(): Promise<void> {
    const { client } = this.#state
    await client.quit().catch(() => client.disconnect())
  }
}

/** peek.lua's answer for one user: `[wins, "<rank>:<issuedAt>[:<requestId>]" or false]`. */
function winOf(couponId: number, userId: string, reply: LuaReply | null): Win | null {
  const value = Array.isArray(reply) ? reply[1] : null
  if (typeof value !== 'string') return null
  // A request id may hold colons itself: it is everything after the second.
  const [rank, issuedAt] = value.split(':', 2)
  const win: Win = { couponId, userId, rank: Number(rank), issuedAt: Number(issuedAt) }
  const at = value.indexOf(':', value.indexOf(':') + 1)
  if (at > 0) win.requestId = value.slice(at + 1)
  return win
}

/**
 * Answers the waiter; the win, when it is one. `judgedAt`: the instant the script
 * judged the request by, a new win's.
 */
function settle(
  couponId: number,
  w: Waiter,
  reply: LuaReply | undefined,
  judgedAt: number,
): Win | null {
  if (typeof reply === 'string' || reply instanceof Uint8Array) {
    // "<rank>:<issuedAt>": this request's win, decided by an earlier run (a bulk
    // string: a Buffer from runNow's raw command)
    const text = String(reply)
    const colon = text.indexOf(':')
    const rank = Number(text.slice(0, colon))
    const issuedAt = Number(text.slice(colon + 1))
    const win = { couponId, userId: w.userId, rank, issuedAt, requestId: w.requestId }
    w.resolve({ won: true, win })
    return win
  }
  const code = Number(reply)
  if (code > 0) {
    const win = {
      couponId,
      userId: w.userId,
      rank: code,
      issuedAt: judgedAt,
      requestId: w.requestId,
    }
    w.resolve({ won: true, win })
    return win
  }
  const refusal = ISSUE_REFUSALS[code]
  if (refusal) w.resolve({ won: false, refusal })
  else w.reject(new Error(`issue.lua returned ${String(reply)}`))
  return null
}
