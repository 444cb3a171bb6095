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
import type { Logger } from 'pino'
import { CODES } from '../coupon-state/codes.js'
import type { CouponState, CouponStateOptions } from '../coupon-state/coupon-state.js'
import { issueKeys } from '../coupon-state/keys.js'
import { scripts } from '../coupon-state/scripts.js'
import type { CouponRules, IssueOutcome, Refusal, Win } from '../domain/coupon.js'
import { newRequestId } from '../domain/request-id.js'
import type { DrawSeeds } from '../draw/seeds.js'
import { pseudonymOf } from '../draw/shuffle.js'
import type { Metrics } from '../ops/metrics.js'
import { closeRedis } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import type { LuaReply } from '../redis/lua-script.js'
import type { ConfigureResult, EntrantPage, EntryState, StockGate } from './stock-gate.js'

/** The script's code of each refusal it can answer (an unknown coupon is the service's). */
const REFUSAL_CODES = {
  ISSUE_NOT_STARTED: CODES.ISSUE_NOT_STARTED,
  ISSUE_ENDED: CODES.ISSUE_ENDED,
  ALREADY_ISSUED: CODES.ALREADY_ISSUED,
  SOLD_OUT: CODES.SOLD_OUT,
  DRAWING: CODES.DRAWING,
} satisfies Record<Exclude<Refusal, 'COUPON_NOT_FOUND' | 'ENTERED' | 'NOT_DRAWN'>, number>

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
  /** where a draw coupon's seed is read (its entrants' pseudonyms); null: no draws */
  seeds?: DrawSeeds | null
  /**
   * 'redis' (the default, the service's): the window is judged by Redis's TIME.
   * 'caller': by each request's `now` (tests of the window's exact edges, which
   * no real clock can hit to the millisecond).
   */
  clock?: 'redis' | 'caller'
}

/** The draw's winners entered per script call. */
const WINNERS_PER_CALL = 1000
/** Entrants read per ZRANGE (about 0.75 MB a reply), and ZRANGEs in flight at once. */
const ENTRANTS_PER_PAGE = 10_000
const PAGES_AT_ONCE = 8
/** A pseudonym's length: the entries' members are pseudonym ‖ userId. */
const PSEUDONYM = 64

export class RedisStockGate implements StockGate {
  readonly #state: CouponState
  readonly #metrics: Metrics | undefined
  readonly #seeds: DrawSeeds | null
  /**
   * Coupons known to have a draw: 'entering' while it has not run (their requests
   * go to enter.lua), 'drawn' after (issue.lua, and SOLD_OUT for an entrant is
   * NOT_DRAWN). Learnt from the scripts' answers, which are the truth: issue.lua
   * refuses a batch of a coupon whose draw has not run, enter.lua one whose has.
   */
  readonly #draws = new Map<number, 'entering' | 'drawn' | 'none'>()
  readonly #callerClock: boolean
  /** This turn's requests, per coupon; sent when the turn's I/O is done. */
  #batches = new Map<number, Waiter[]>()
  #sendScheduled = false

  constructor(options: RedisStockGateOptions) {
    this.#state = options.state
    this.#metrics = options.metrics
    this.#seeds = options.seeds ?? null
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
    if (this.#draws.get(couponId) === 'entering') {
      this.#enter(couponId, waiters)
      return
    }
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
          if (codes === CODES.DRAW_PENDING) {
            this.#draws.set(couponId, 'entering')
            this.#enter(couponId, waiters)
            return
          }
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
          // SOLD_OUT may be NOT_DRAWN: for a coupon whose draw has run, or may have.
          const maybeDrawn = this.#draws.get(couponId) !== 'none'
          for (let i = 0; i < waiters.length; i++) {
            const w = waiters[i] as Waiter
            const reply = codes[i + 1]
            if (maybeDrawn && Number(reply) === CODES.SOLD_OUT) {
              this.#soldOutOrNotDrawn(couponId, w)
              continue
            }
            const win = settle(couponId, w, reply, this.#callerClock ? w.now : clock)
            // kept a few seconds, to be audited if Redis turns out to have lost it
            if (win) recent.add(couponId, win.userId, win.rank, win.requestId, at)
          }
        },
        (err: unknown) => {
          this.#metrics?.gateFailed(err)
          for (const w of waiters) w.reject(err)
        },
      )
  }

  /** A batch of a coupon whose draw has not run: entries (enter.lua). */
  async #enter(couponId: number, waiters: Waiter[]) {
    try {
      const seed = this.#seeds?.peek(couponId) ?? (await this.#seeds?.get(couponId))
      if (!seed) throw new Error(`coupon ${couponId} has a draw but no seed`)
      const args: (string | number)[] = []
      const pseudonyms: string[] = []
      for (const w of waiters) {
        const pseudonym = pseudonymOf(seed, w.userId)
        pseudonyms.push(pseudonym)
        args.push(w.userId, this.#callerClock ? w.now : '', pseudonym + w.userId)
      }
      const reply = await this.#state.whenLoaded(couponId, (k) =>
        scripts.enter.runNow(this.#state.client, [k.meta, k.draw, k.entries], args),
      )
      if (reply === null) {
        for (const w of waiters) w.resolve({ won: false, refusal: 'COUPON_NOT_FOUND' })
        return
      }
      if (reply === CODES.NO_DRAW) {
        this.#draws.set(couponId, 'drawn')
        this.#decide(couponId, waiters)
        return
      }
      if (!Array.isArray(reply) || reply.length !== waiters.length + 1)
        throw new Error(`enter.lua answered ${waiters.length} requests with ${String(reply)}`)
      const drawAt = Number(reply[0])
      for (let i = 0; i < waiters.length; i++) {
        const w = waiters[i] as Waiter
        const code = Number(reply[i + 1])
        if (code === CODES.OK)
          w.resolve({ won: false, refusal: 'ENTERED', drawAt, pseudonym: pseudonyms[i] as string })
        else if (code === CODES.DRAWING) w.resolve({ won: false, refusal: 'DRAWING' })
        else settle(couponId, w, code, w.now)
      }
    } catch (err) {
      this.#metrics?.gateFailed(err)
      for (const w of waiters) w.reject(err)
    }
  }

  /** After the draw a sold-out coupon tells an entrant NOT_DRAWN. */
  #soldOutOrNotDrawn(couponId: number, w: Waiter) {
    this.#entered(couponId, w.userId).then(
      (entry) => w.resolve({ won: false, refusal: entry ? 'NOT_DRAWN' : 'SOLD_OUT' }),
      () => w.resolve({ won: false, refusal: 'SOLD_OUT' }),
    )
  }

  async #entered(couponId: number, userId: string): Promise<EntryState | null> {
    const k = this.#state.keys.coupon(couponId)
    const [at, state] = await this.#state.client.hmget(k.draw, 'at', 'state')
    // Learnt for the next SOLD_OUT (a draw set later makes issue.lua say so).
    if (!this.#draws.has(couponId) || this.#draws.get(couponId) === 'none')
      this.#draws.set(couponId, state ? (state === 'drawn' ? 'drawn' : 'entering') : 'none')
    if (!state) return null
    const pseudonym = await this.#seeds?.pseudonym(couponId, userId)
    if (!pseudonym) return null
    const score = await this.#state.client.zscore(k.entries, pseudonym + userId)
    return score === null ? null : { drawAt: Number(at), drawn: state === 'drawn' }
  }

  entry(couponId: number, userId: string): Promise<EntryState | null> {
    this.#state.assertReady()
    return this.#entered(couponId, userId).catch((err: unknown) => {
      throw toRedisFailure(err)
    })
  }

  async entrantCount(couponId: number): Promise<number> {
    this.#state.assertReady()
    try {
      return await this.#state.client.zcard(this.#state.keys.coupon(couponId).entries)
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  async closeEntries(couponId: number): Promise<void> {
    const k = this.#state.keys.coupon(couponId)
    await scripts.drawClose.run(this.#state.client, [k.draw], [])
  }

  async enterWinners(couponId: number, winners: readonly Win[]): Promise<void> {
    const k = this.#state.keys.coupon(couponId)
    const issuedAt = winners[0]?.issuedAt ?? 0
    let i = 0
    do {
      const chunk = winners.slice(i, i + WINNERS_PER_CALL)
      i += WINNERS_PER_CALL
      const args: (string | number)[] = [issuedAt, i >= winners.length ? '1' : '0']
      for (const w of chunk) args.push(w.userId, w.rank)
      await this.#state.whenLoaded(couponId, (kk) =>
        scripts.drawEnter.run(this.#state.client, [kk.users, kk.stream, k.draw], args),
      )
    } while (i < winners.length)
    this.#draws.set(couponId, 'drawn')
  }

  /**
   * The draw's entrants, pseudonym order, a page at a time (read once entries are
   * closed, so the set no longer changes). Pages are small (a command's reply
   * stays well inside the command timeout) and several are asked for at once.
   */
  async *entrantPages(couponId: number): AsyncGenerator<EntrantPage> {
    const k = this.#state.keys.coupon(couponId)
    const client = this.#state.client
    const total = await client.zcard(k.entries)
    for (let start = 0; start < total; start += ENTRANTS_PER_PAGE * PAGES_AT_ONCE) {
      const pages = await Promise.all(
        Array.from({ length: PAGES_AT_ONCE }, (_, i) => {
          const from = start + i * ENTRANTS_PER_PAGE
          return from < total
            ? client.zrange(k.entries, from, from + ENTRANTS_PER_PAGE - 1)
            : Promise.resolve([])
        }),
      )
      for (const members of pages) {
        if (members.length === 0) continue
        yield {
          pseudonyms: members.map((m) => m.slice(0, PSEUDONYM)),
          userIds: members.map((m) => m.slice(PSEUDONYM)),
        }
      }
    }
  }

  async register(rules: CouponRules): Promise<void> {
    await this.#state.register(rules)
    const k = this.#state.keys.coupon(rules.couponId)
    try {
      await this.#state.client.del(k.draw, k.entries)
      if (rules.drawAt != null)
        await scripts.drawConfigure.run(this.#state.client, [k.draw, k.entries], [rules.drawAt])
    } catch (err) {
      throw toRedisFailure(err)
    }
    this.#draws.delete(rules.couponId)
  }

  async configure(rules: CouponRules): Promise<ConfigureResult> {
    const result = await this.#state.configure(rules)
    if (result !== 'OK') return result
    const k = this.#state.keys.coupon(rules.couponId)
    await scripts.drawConfigure
      .run(this.#state.client, [k.draw, k.entries], [rules.drawAt ?? ''])
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    this.#draws.delete(rules.couponId)
    return result
  }

  appendCodes(
    couponId: number,
    firstSeq: number,
    codes: readonly string[],
  ): Promise<number | 'NOT_LOADED'> {
    return this.#state.appendCodes(couponId, firstSeq, codes)
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

  async holds(rules: CouponRules): Promise<boolean | null> {
    const k = this.#state.keys.coupon(rules.couponId)
    const client = this.#state.client
    const [[start, end, total], at] = await Promise.all([
      client.hmget(k.meta, 'start', 'end', 'total'),
      client.hget(k.draw, 'at'),
    ])
    if (start == null) return null
    return (
      Number(start) === rules.issueStart &&
      Number(end) === rules.issueEnd &&
      Number(total) === (rules.totalQuantity ?? -1) &&
      (at == null ? null : Number(at)) === (rules.drawAt ?? null)
    )
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
    await closeRedis(this.#state.client)
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
  const outcome = Array.isArray(reply)
    ? // { win, partner code }: a coupon with codes (no code: past its last one)
      withCode(outcomeOf(couponId, w, reply[0], judgedAt), reply[1])
    : outcomeOf(couponId, w, reply, judgedAt)
  if (!outcome) {
    w.reject(new Error(`issue.lua returned ${String(reply)}`))
    return null
  }
  w.resolve(outcome)
  return outcome.won ? outcome.win : null
}

function outcomeOf(
  couponId: number,
  w: Waiter,
  reply: LuaReply | undefined,
  judgedAt: number,
): IssueOutcome | null {
  if (typeof reply === 'string' || reply instanceof Uint8Array) {
    // "<rank>:<issuedAt>": this request's win, decided by an earlier run (a bulk
    // string: a Buffer from runNow's raw command)
    const text = String(reply)
    const colon = text.indexOf(':')
    const rank = Number(text.slice(0, colon))
    const issuedAt = Number(text.slice(colon + 1))
    return {
      won: true,
      win: { couponId, userId: w.userId, rank, issuedAt, requestId: w.requestId },
    }
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
    return { won: true, win }
  }
  const refusal = ISSUE_REFUSALS[code]
  return refusal ? { won: false, refusal } : null
}

function withCode(outcome: IssueOutcome | null, code: LuaReply | Uint8Array | undefined) {
  if (!outcome?.won || code === undefined || code === null) return outcome
  outcome.code = String(code)
  return outcome
}

/** How the gate's state reports a rebuild, a catch-up and a lost win: logs and metrics. */
export function couponStateReports(
  logger: Logger,
  metrics: Metrics,
): Pick<CouponStateOptions, 'onRebuild' | 'onCatchUp' | 'onLost'> {
  return {
    // A coupon with winners loaded from the database means Redis had lost it.
    onRebuild: (couponId, winners) => {
      if (winners === 0) {
        logger.info({ couponId }, 'coupon state loaded into Redis from the database')
        return
      }
      metrics.gateRebuilds.inc()
      logger.warn(
        { event: 'gate.rebuilt', couponId, winners },
        'coupon state rebuilt in Redis from the database and its stream',
      )
    },
    onCatchUp: (couponId, { recovered, freed }) => {
      metrics.gateCatchUps.inc()
      const lost = recovered > 0 || freed > 0
      logger[lost ? 'error' : 'info'](
        { event: 'gate.caught_up', couponId, recovered, freed },
        lost
          ? 'Redis had lost data: the coupon gate caught up with the database before answering'
          : 'coupon gate checked against the database after a Redis restart or failover',
      )
    },
    onLost: (win) => {
      metrics.winsLost.inc({ coupon: String(win.couponId), cause: 'forgotten' })
      logger.error(
        {
          event: 'win.lost',
          couponId: win.couponId,
          userId: win.userId,
          rank: win.rank,
          requestId: win.requestId,
          cause: 'forgotten',
        },
        'an answered win is lost: Redis forgot it before it was persisted',
      )
    },
  }
}
