/**
 * A coupon's state in Redis, as the gate keeps it: creating it, changing its
 * rules, running a script on it, rebuilding it from the database when it is
 * missing (first use, Redis restarted without persistence, FLUSHALL, failover),
 * and catching it up with the database when it is behind (Redis restarted from a
 * shorter AOF or an older RDB, a promoted replica: stamp.lua). The layout (keys,
 * scripts, codes, stream entries) is docs/architecture.md's "Coupon state in
 * Redis"; the catch-up is its "When Redis forgets".
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { CouponRules, Win } from '../domain/coupon.js'
import { rankHoles } from '../domain/coupon.js'
import { UnavailableError } from '../domain/errors.js'
import { isReady, type RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { CODES } from './codes.js'
import { readQueuedWins } from './entries.js'
import type { CouponSnapshot, GateSource } from './gate-source.js'
import { type CouponKeys, PERSIST_GROUP, type RedisKeys } from './keys.js'
import { type RecentWin, RecentWins } from './recent-wins.js'
import { scripts } from './scripts.js'

/** The rebuild lock outlives any rebuild; a crashed rebuilder's lock expires. */
const LOCK_TTL_MS = 30_000
/** How long a caller waits for another node's rebuild before answering 503. */
const REBUILD_WAIT_MS = 10_000
const CHUNK = 1000
const CODES_CHUNK = 10_000

/** Reads a coupon's partner codes numbered `fromSeq` on, at most `max` (GateSource). */
type ReadCodes = (fromSeq: number, max: number) => Promise<string[]>

export interface CouponStateOptions {
  client: RedisClient
  keys: RedisKeys
  /** where a missing state is rebuilt from */
  source: GateSource
  onRebuild?: (couponId: number, winners: number) => void
  /**
   * The state was behind the database and caught up: `recovered` wins the
   * database held and the gate had forgotten, `freed` ranks below the top that
   * neither held (answered, then forgotten before they were persisted).
   */
  onCatchUp?: (couponId: number, figures: { recovered: number; freed: number }) => void
  /**
   * One answered win of this process's that Redis forgot before it was persisted:
   * it will never be a row (found by the audit after a catch-up or a reconnect).
   */
  onLost?: (win: RecentWin) => void
}

export class CouponState {
  readonly client: RedisClient
  readonly keys: RedisKeys
  readonly #source: GateSource
  readonly #onRebuild: (couponId: number, winners: number) => void
  readonly #onCatchUp: NonNullable<CouponStateOptions['onCatchUp']>
  readonly #onLost: (win: RecentWin) => void
  readonly #rebuilding = new Map<number, Promise<boolean>>()
  readonly #catchingUp = new Map<number, Promise<void>>()
  /** this process's recent answered wins, audited after Redis may have lost data */
  readonly recent = new RecentWins()
  #wasReady = false

  constructor(options: CouponStateOptions) {
    this.client = options.client
    this.keys = options.keys
    this.#source = options.source
    this.#onRebuild = options.onRebuild ?? (() => {})
    this.#onCatchUp = options.onCatchUp ?? (() => {})
    this.#onLost = options.onLost ?? (() => {})
    // A reconnect may be to a restarted server or a promoted replica: whatever
    // this process answered lately is audited once its coupons have caught up.
    this.#wasReady = isReady(this.client)
    this.client.on('ready', () => {
      if (this.#wasReady) void this.auditRecent().catch(() => {})
      this.#wasReady = true
    })
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
        k.live,
        k.stagingUsers,
        k.stagingHoles,
        k.codes,
        k.stagingCodes,
      )
      await this.client.xgroup('CREATE', k.stream, PERSIST_GROUP, '0', 'MKSTREAM')
      await this.client.hset(k.meta, meta)
      await scripts.stamp.run(this.client, [k.meta, k.live], ['set']) // empty, as the database
      await this.client.sadd(this.keys.streams, String(rules.couponId))
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  /**
   * configure.lua: OK, NOT_LOADED (also when the state is behind the database:
   * ensureLoaded catches it up) or QUANTITY_BELOW_ISSUED; never loads.
   */
  async configure(rules: CouponRules): Promise<'OK' | 'NOT_LOADED' | 'QUANTITY_BELOW_ISSUED'> {
    this.assertReady()
    const k = this.keys.coupon(rules.couponId)
    const args = [rules.issueStart, rules.issueEnd, rules.totalQuantity ?? -1]
    const code = await scripts.configure
      .run(this.client, [k.meta, k.users, k.live], args)
      .catch((err: unknown) => {
        throw toRedisFailure(err)
      })
    if (code === CODES.OK) return 'OK'
    if (code === CODES.NOT_LOADED || code === CODES.BEHIND) return 'NOT_LOADED'
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
   * Runs a script that answers NOT_LOADED when the coupon has no state, or BEHIND
   * when the state may have lost what the database holds; loads it or catches it
   * up then, and runs the script again. null: no such coupon.
   */
  async whenLoaded<T>(couponId: number, run: (k: CouponKeys) => Promise<T>): Promise<T | null> {
    this.assertReady()
    const k = this.keys.coupon(couponId)
    try {
      const first = await run(k)
      if (first === CODES.BEHIND) await this.catchUp(couponId)
      else if (first !== CODES.NOT_LOADED) return first
      else if (!(await this.ensureLoaded(couponId))) return null
      const second = await run(k)
      if (second === CODES.NOT_LOADED || second === CODES.BEHIND)
        throw new UnavailableError('redis', new Error('state changed again after a rebuild'))
      return second
    } catch (err) {
      throw toRedisFailure(err)
    }
  }

  /**
   * Marks the coupon's state behind the database (the database holds what it gave
   * again): issue.lua answers BEHIND until it has caught up.
   */
  async markBehind(couponId: number): Promise<void> {
    const k = this.keys.coupon(couponId)
    await scripts.stamp.run(this.client, [k.meta, k.live], ['clear']).catch((err: unknown) => {
      throw toRedisFailure(err)
    })
  }

  /**
   * Brings a state that may be behind the database (stamp.lua) up to it, then
   * audits this process's recent wins of the coupon. One catch-up per coupon at a
   * time in this process; across nodes, the rebuild lock admits one.
   */
  catchUp(couponId: number): Promise<void> {
    let running = this.#catchingUp.get(couponId)
    if (!running) {
      running = this.#catchUpLocked(couponId)
        // the audit's trouble is not the request's: its wins wait for the next one
        .then(() => this.#audit(couponId).catch(() => {}))
        .finally(() => this.#catchingUp.delete(couponId))
      this.#catchingUp.set(couponId, running)
    }
    return running
  }

  /**
   * After a reconnect (the server may have restarted from a shorter AOF, or a
   * replica taken its place): each coupon this process answered wins for lately is
   * caught up if it is behind, and those wins audited.
   */
  async auditRecent(): Promise<void> {
    for (const couponId of this.recent.coupons()) {
      const k = this.keys.coupon(couponId)
      const fresh = await scripts.stamp.run(this.client, [k.meta, k.live], ['check'])
      if (fresh === 1) await this.#audit(couponId)
      else if ((await this.client.exists(k.meta)) === 1) await this.catchUp(couponId)
      else if (await this.ensureLoaded(couponId)) await this.#audit(couponId)
    }
  }

  /**
   * This process's recent wins of the coupon that its state (caught up with the
   * database, so holding every row) no longer holds with the same rank: answered,
   * forgotten by Redis before they were persisted, never to be rows. Each is
   * reported once (onLost).
   */
  async #audit(couponId: number) {
    const wins = this.recent.take(couponId)
    const k = this.keys.coupon(couponId)
    for (let i = 0; i < wins.length; i += CHUNK) {
      const slice = wins.slice(i, i + CHUNK)
      let held: (string | null)[]
      try {
        held = await this.client.hmget(k.users, ...slice.map((w) => w.userId))
      } catch (err) {
        // Not looked up: kept for the next audit (the reconnect that follows).
        this.recent.putBack(wins.slice(i), Date.now())
        throw err
      }
      slice.forEach((w, j) => {
        const value = held[j]
        if (!value || value.slice(0, value.indexOf(':')) !== String(w.rank)) this.#onLost(w)
      })
    }
  }

  async #catchUpLocked(couponId: number): Promise<void> {
    const k = this.keys.coupon(couponId)
    await this.#withRebuildLock(
      couponId,
      async () =>
        (await scripts.stamp.run(this.client, [k.meta, k.live], ['check'])) === 1 ||
        (await this.client.exists(k.meta)) === 0,
      async (token) => {
        await this.#source.withCouponLocked(couponId, async (snapshot) => {
          const { rules, wins } = snapshot
          if (!rules) return
          if ((await scripts.stamp.run(this.client, [k.meta, k.live], ['check'])) === 1) return
          // What the gate holds now (a state from before the loss: a prefix of what
          // it held), the wins still queued, and the database, which wins a
          // disagreement. Nothing was answered since the loss (BEHIND), so none of
          // these can disagree but with the database.
          const winners = new Map<string, Win>()
          for (const w of await this.#readGateWins(k, couponId)) winners.set(w.userId, w)
          const holesBefore = new Set(await this.client.zrange(k.holes, 0, -1))
          for (const w of await readQueuedWins(this.client, k.stream, couponId))
            winners.set(w.userId, w)
          const held = new Map<number, string>()
          let recovered = 0
          for (const w of wins) {
            if (winners.get(w.userId)?.rank !== w.rank) recovered++
            winners.set(w.userId, w)
            held.set(w.rank, w.userId)
          }
          // A win the gate holds whose rank the database gives another user is
          // not kept: the database refuses its row (the worker counts it lost).
          for (const [userId, w] of winners)
            if (held.has(w.rank) && held.get(w.rank) !== userId) winners.delete(userId)
          const holes = await this.#install(k, token, rules, [...winners.values()], snapshot)
          // Ranks below the top that nobody holds now and were no holes before:
          // answered, then lost before they were persisted; they go to others.
          const freed = holes.filter((r) => !holesBefore.has(String(r))).length
          this.#onCatchUp(couponId, { recovered, freed })
        })
      },
    )
  }

  /** The gate's winners as they stand, read in chunks (HSCAN). */
  async #readGateWins(k: CouponKeys, couponId: number): Promise<Win[]> {
    const wins: Win[] = []
    let cursor = '0'
    do {
      const [next, fields] = await this.client.hscan(k.users, cursor, 'COUNT', CHUNK)
      cursor = next
      for (let i = 0; i < fields.length; i += 2) {
        const userId = fields[i] as string
        const value = fields[i + 1] as string
        const [rank, issuedAt] = value.split(':', 2)
        const win: Win = { couponId, userId, rank: Number(rank), issuedAt: Number(issuedAt) }
        const at = value.indexOf(':', value.indexOf(':') + 1)
        if (at > 0) win.requestId = value.slice(at + 1)
        wins.push(win)
      }
    } while (cursor !== '0')
    return wins
  }

  /**
   * Makes sure the coupon's state is in Redis and not behind the database,
   * rebuilding it or catching it up from the database; false: no such coupon. One
   * rebuild per coupon at a time in this process. Takes the coupon's row lock:
   * never call it holding that lock.
   */
  async ensureLoaded(couponId: number): Promise<boolean> {
    const k = this.keys.coupon(couponId)
    if ((await this.client.exists(k.meta)) === 1) {
      // There, but perhaps behind the database (stamp.lua): caught up first.
      if ((await scripts.stamp.run(this.client, [k.meta, k.live], ['check'])) !== 1)
        await this.catchUp(couponId)
      return true
    }
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
    let found = true
    await this.#withRebuildLock(
      couponId,
      async () => (await this.client.exists(k.meta)) === 1,
      (token) =>
        this.#source.withCouponLocked(couponId, async (snapshot) => {
          const { rules, wins } = snapshot
          if (!rules) {
            found = false
            return
          }
          if ((await this.client.exists(k.meta)) === 1) return
          const winners = new Map<string, Win>()
          for (const w of await readQueuedWins(this.client, k.stream, couponId))
            winners.set(w.userId, w)
          for (const w of wins) winners.set(w.userId, w) // the database wins a disagreement
          await this.#install(k, token, rules, [...winners.values()], snapshot)
          this.#onRebuild(couponId, winners.size)
        }),
    )
    if (found) await this.#audit(couponId).catch(() => {})
    return found
  }

  /**
   * Runs `work` holding the coupon's rebuild lock (across nodes: one rebuilder at a
   * time), unless `done` says another node has finished the job meanwhile.
   */
  async #withRebuildLock(
    couponId: number,
    done: () => Promise<boolean>,
    work: (token: string) => Promise<void>,
  ): Promise<void> {
    const k = this.keys.coupon(couponId)
    const token = randomUUID()
    const deadline = Date.now() + REBUILD_WAIT_MS
    while ((await this.client.set(k.lock, token, 'PX', LOCK_TTL_MS, 'NX')) !== 'OK') {
      if (await done()) return
      if (Date.now() > deadline)
        throw new UnavailableError(
          'redis',
          new Error(`rebuild of coupon ${couponId} is taking too long`),
        )
      await sleep(25)
    }
    try {
      await work(token)
    } finally {
      await scripts.unlock.run(this.client, [k.lock], [token]).catch(() => {})
    }
  }

  /**
   * Stages the winners and the partner codes and swaps them in with the rules
   * (load.lua), stamped; the free ranks below the top (the holes).
   */
  async #install(
    k: CouponKeys,
    token: string,
    rules: CouponRules,
    winners: Win[],
    { readCodes, drawn = false, readEntrants }: Omit<CouponSnapshot, 'rules' | 'wins'>,
  ): Promise<number[]> {
    // A draw coupon's draw state goes back before its rules: issue.lua must never
    // see the rules without it (it would let first-come wins in before the draw).
    // Entries not yet drawn are Redis's alone (docs/draw.md); a drawn coupon's
    // are in the database, and go back so that its losers hear NOT_DRAWN.
    if (rules.drawAt != null) {
      await this.client.hset(k.draw, 'at', rules.drawAt)
      if (drawn) await this.client.hset(k.draw, 'state', 'drawn')
      else await this.client.hsetnx(k.draw, 'state', 'open')
      if (drawn && readEntrants)
        for await (const page of readEntrants())
          if (page.length > 0)
            await this.client.zadd(k.entries, ...page.flatMap((e) => [0, e.pseudonym + e.userId]))
    }
    const holes = await this.#stage(k, winners)
    await this.#stageCodes(k, readCodes)
    const args = [token, rules.issueStart, rules.issueEnd, rules.totalQuantity ?? -1, PERSIST_GROUP]
    const keys = [
      k.meta,
      k.users,
      k.holes,
      k.stream,
      k.lock,
      k.stagingUsers,
      k.stagingHoles,
      k.live,
      k.codes,
      k.stagingCodes,
    ]
    if ((await scripts.load.run(this.client, keys, args)) !== CODES.OK) {
      throw new UnavailableError('redis', new Error('lost the rebuild lock'))
    }
    await this.client.sadd(this.keys.streams, String(rules.couponId))
    return holes
  }

  /** The partner codes, read from the database in number order, staged in chunks. */
  async #stageCodes(k: CouponKeys, readCodes: ReadCodes) {
    await this.client.del(k.stagingCodes)
    for (let seq = 1; ; ) {
      const codes = await readCodes(seq, CODES_CHUNK)
      if (codes.length === 0) return
      const fields = codes.flatMap((code, i) => [seq + i, code])
      await this.client.hset(k.stagingCodes, ...fields)
      seq += codes.length
    }
  }

  async #stage(k: CouponKeys, winners: Win[]): Promise<number[]> {
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
    return holes
  }
}
