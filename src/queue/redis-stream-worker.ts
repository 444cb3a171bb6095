/**
 * The persistence worker of Redis mode: drains every coupon's stream into
 * coupon_issues. Any number may run at once (members of one consumer group).
 *
 * Per batch (reads of WORKER_BATCH_SIZE entries of one coupon, up to WORKER_TX_ROWS
 * per transaction when there is a backlog), in ONE transaction:
 *   lock the coupon row → verify each win against the gate (while the insert runs;
 *   a win that is not the gate's rolls back) → insert (idempotently, or as new wins
 *   with a fallback) → advance issued_quantity; then acknowledge the entries and
 *   drop them from the stream (ack.lua).
 * On PostgreSQL new entries arrive packed as columns (read-wins.lua) and go to the
 * database and back to Redis unsplit: per win, the worker does no JS work on that
 * path. Elsewhere they are read raw and persisted win by win.
 * - A crash before the ack leaves the entries pending; another worker reclaims them
 *   (XAUTOCLAIM) after WORKER_CLAIM_IDLE_MS and the idempotent insert makes the
 *   redelivery harmless.
 * - A worker that lives through a Redis failure may have entries pending on itself
 *   that it does not hold (the XREADGROUP reply or the ack was lost with the
 *   connection); after a failed pass it reads its own pending entries again rather
 *   than leave them queued for WORKER_CLAIM_IDLE_MS.
 * - The database down: the batch stays pending in hand and is retried with backoff;
 *   the gate keeps accepting wins into the stream meanwhile.
 * - A poison entry (malformed, or rejected by the database WORKER_MAX_ATTEMPTS
 *   times) goes to the coupon's dead-letter stream with the reason; the rest of its
 *   batch is persisted one by one, so it blocks nothing.
 * - The row lock + verification keep DB ⊆ Redis: a win whose Redis state was lost
 *   (and so may have been handed to someone else by the rebuilt gate) is
 *   dead-lettered, never inserted.
 */
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import { addIssuedQuantity, lockCoupons } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { isTransientDbError, isUniqueViolation } from '../db/errors.js'
import { insertNewWins, insertWins, takesJoinedWins } from '../db/issues-repo.js'
import { UnavailableError } from '../domain/errors.js'
import type { Metrics } from '../ops/metrics.js'
import type { RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { type CouponKeys, PERSIST_GROUP, type RedisKeys } from '../redis/keys.js'
import { LuaScript } from '../redis/lua-script.js'
import {
  type PackedWins,
  parseEntry,
  type RawEntry,
  type StreamWin,
  unpackWins,
} from '../redis/stream-entries.js'
import { StreamDirectory } from './stream-directory.js'

const scripts = {
  ack: new LuaScript(new URL('./lua/ack.lua', import.meta.url)),
  deadLetter: new LuaScript(new URL('./lua/dead-letter.lua', import.meta.url)),
  readWins: new LuaScript(new URL('./lua/read-wins.lua', import.meta.url)),
  verify: new LuaScript(new URL('./lua/verify.lua', import.meta.url)),
}

const MAX_IDLE_MS = 100
/** transactions of one coupon's backlog per pass, before the other coupons get a turn */
const MAX_TX_PER_PASS = 5
const MAX_BACKOFF_MS = 2000

/** The coupon has no gate state in Redis (lost and not yet rebuilt). */
class GateNotLoaded extends Error {
  override readonly name = 'GateNotLoaded'
  readonly code = 'GATE_NOT_LOADED'

  constructor() {
    super('the coupon has no gate state in Redis yet')
  }
}

/** Some packed wins are not the gate's: the batch is judged win by win instead. */
class NotAllKnown extends Error {
  override readonly name = 'NotAllKnown'
  readonly code = 'NOT_ALL_KNOWN'

  constructor(n: number) {
    super(`${n} wins of the batch are not in the gate`)
  }
}

/**
 * New entries as read-wins.lua delivers them: the packed wins of each read (kept
 * apart: each script call on them handles one read's worth, so none holds Redis
 * much longer than one XREADGROUP did), and the other entries raw.
 */
interface Delivery {
  parts: PackedWins[]
  others: RawEntry[]
}

const NOTHING: Delivery = { parts: [], others: [] }
/** an entry id's time part (epoch ms) */
const msOf = (id: string) => Number(id.slice(0, id.indexOf('-')))
const size = (d: Delivery) => d.parts.reduce((n, p) => n + p.count, d.others.length)
const joined = (parts: PackedWins[], column: keyof Omit<PackedWins, 'count'>) =>
  parts.map((p) => p[column]).join(',')

export interface StreamWorkerOptions {
  client: RedisClient
  keys: RedisKeys
  db: Db
  logger: Logger
  metrics?: Metrics
  batchSize: number
  /** rows gathered into one transaction when the stream has a backlog */
  txRows: number
  claimIdleMs: number
  maxAttempts: number
  /**
   * Has the gate rebuild a coupon whose Redis state is missing (the worker then
   * persists the wins it holds, or dead-letters those the rebuilt gate lacks).
   */
  loadGate?: (couponId: number) => Promise<unknown>
  /** wait until a win is this old before persisting it (see docs: AOF everysec) */
  persistDelayMs?: number
  /**
   * After a pass that found no backlog, wait this long before the next: at a steady
   * few thousand wins a second, back-to-back passes would each persist a handful,
   * and every pass costs the same round trips and a transaction whatever it holds.
   */
  lingerMs?: number
  consumer?: string
}

export class RedisStreamWorker {
  readonly consumer: string
  readonly #o: Required<Omit<StreamWorkerOptions, 'metrics' | 'loadGate'>> &
    Pick<StreamWorkerOptions, 'metrics' | 'loadGate'>
  readonly #directory: StreamDirectory
  readonly #packed: boolean
  /** entries in hand that failed and wait for another attempt, by coupon */
  readonly #retry = new Map<number, StreamWin[]>()
  readonly #attempts = new Map<string, number>()
  #nextClaimAt = 0
  /** a pass failed: entries may be pending on this consumer that nothing holds */
  #recoverOwn = false
  #running: Promise<void> | null = null
  #stopping = false
  #wake: (() => void) | null = null
  #lastWarnAt = 0

  constructor(options: StreamWorkerOptions) {
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}-${Date.now().toString(36)}`
    this.#o = { persistDelayMs: 0, lingerMs: 0, ...options, consumer: this.consumer }
    this.#directory = new StreamDirectory(options.client, options.keys, options.db)
    this.#packed = takesJoinedWins(options.db)
  }

  start(): this {
    this.#running ??= this.#loop()
    return this
  }

  /** Finishes the batch in hand, then resolves. */
  async stop(): Promise<void> {
    this.#stopping = true
    this.#wake?.()
    await this.#running
  }

  /** One pass over every coupon stream; the number of entries handled. */
  async drainOnce(): Promise<number> {
    let handled = 0
    const claimDue = Date.now() >= this.#nextClaimAt
    const recoverOwn = this.#recoverOwn
    let recovered = true
    for (const couponId of await this.#directory.couponIds()) {
      if (this.#stopping) break
      if (recoverOwn) {
        // Not while a batch is held for a retry: re-reading it would only raise its
        // delivery count (and a count past WORKER_MAX_ATTEMPTS dead-letters it).
        if (this.#retry.get(couponId)?.length) recovered = false
        else handled += await this.#recoverOwnPending(couponId)
      }
      handled += await this.#drainCoupon(couponId)
      if (claimDue) handled += await this.#reclaim(couponId)
    }
    if (recoverOwn && recovered && !this.#stopping) this.#recoverOwn = false
    if (claimDue) this.#nextClaimAt = Date.now() + Math.max(100, this.#o.claimIdleMs / 2)
    return handled
  }

  async #loop() {
    let idleMs = 0
    while (!this.#stopping) {
      let handled = 0
      try {
        handled = await this.drainOnce()
        idleMs = handled > 0 ? 0 : Math.min(MAX_IDLE_MS, Math.max(5, idleMs * 2))
      } catch (err) {
        this.#recoverOwn = true
        idleMs = Math.min(MAX_BACKOFF_MS, Math.max(50, idleMs * 2))
        this.#warn(err, 'stream worker pass failed; backing off')
      }
      if (this.#stopping) break
      if (handled === 0) await this.#sleep(idleMs)
      else if (handled < this.#o.batchSize && this.#o.lingerMs > 0)
        await this.#sleep(this.#o.lingerMs)
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      const self = this
      function done() {
        clearTimeout(timer)
        self.#wake = null
        resolve()
      }
      this.#wake = done
    })
  }

  async #drainCoupon(couponId: number): Promise<number> {
    const retry = this.#retry.get(couponId)
    if (retry?.length) {
      this.#retry.delete(couponId)
      await this.#persist(couponId, retry)
      return retry.length
    }
    const k = this.#o.keys.coupon(couponId)
    let delivery = await this.#readNew(k)
    let handled = 0
    for (let tx = 1; size(delivery) > 0; tx++) {
      // A full transaction means a backlog: read the next one while this one is
      // written. (If the write fails, what was read stays pending on this consumer
      // and the next pass recovers it.)
      const next =
        size(delivery) >= this.#o.txRows && tx < MAX_TX_PER_PASS ? this.#readNew(k) : null
      try {
        if (delivery.others.length > 0)
          await this.#persist(couponId, await this.#parse(couponId, k, delivery.others))
        await this.#persistPacked(couponId, k, delivery.parts)
      } catch (err) {
        await next?.catch(() => {})
        throw err
      }
      handled += size(delivery)
      delivery = next ? await next : NOTHING
    }
    return handled
  }

  /**
   * One transaction's worth of new entries: a read of WORKER_BATCH_SIZE, and when
   * that comes back full (a backlog), the reads up to WORKER_TX_ROWS at once (they
   * share one round trip); each read packs its wins as columns (read-wins.lua).
   */
  async #readNew(k: CouponKeys): Promise<Delivery> {
    const first = await this.#readPacked(k)
    if (size(first) < this.#o.batchSize) return first
    const reads = Math.ceil(this.#o.txRows / this.#o.batchSize) - 1
    const rest = await Promise.all(Array.from({ length: reads }, () => this.#readPacked(k)))
    return {
      parts: [first, ...rest].flatMap((d) => d.parts),
      others: [first, ...rest].flatMap((d) => d.others),
    }
  }

  async #readPacked(k: CouponKeys): Promise<Delivery> {
    // Packed only for a database that takes the columns as they are; the others
    // get the entries raw, and the win-by-win path.
    if (!this.#packed) return { parts: [], others: await this.#read(k) }
    try {
      const [count, ids, users, ranks, issuedAts, others] = (await scripts.readWins.run(
        this.#o.client,
        [k.stream],
        [PERSIST_GROUP, this.consumer, this.#o.batchSize],
      )) as [number, string, string, string, string, RawEntry[]]
      return { parts: count > 0 ? [{ count, ids, users, ranks, issuedAts }] : [], others }
    } catch (err) {
      return this.#readFailed(k, err, NOTHING)
    }
  }

  /**
   * Persists again the entries pending on this consumer that it does not hold in
   * `#retry` (see `#recoverOwn`); the idempotent insert makes a repeat harmless.
   */
  async #recoverOwnPending(couponId: number): Promise<number> {
    const k = this.#o.keys.coupon(couponId)
    let handled = 0
    let after = '0'
    for (;;) {
      const entries = await this.#read(k, after)
      const last = entries.at(-1)
      if (!last) return handled
      after = last[0]
      const held = new Set(this.#retry.get(couponId)?.map((e) => e.id))
      const orphans = entries.filter(([id, fields]) => Array.isArray(fields) && !held.has(id))
      // Pending but deleted from the stream (fields nil): nothing left to persist.
      const gone = entries.filter(([, fields]) => !Array.isArray(fields)).map(([id]) => id)
      if (gone.length > 0) await this.#o.client.xack(k.stream, PERSIST_GROUP, ...gone)
      if (orphans.length === 0) continue
      this.#o.logger.warn(
        { couponId, entries: orphans.length },
        'persisting wins left pending on this worker by a failed pass',
      )
      await this.#persist(couponId, await this.#parse(couponId, k, orphans))
      handled += orphans.length
    }
  }

  /** `>`: entries never delivered; an id: this consumer's pending entries after it. */
  async #read(k: CouponKeys, after = '>'): Promise<RawEntry[]> {
    try {
      const reply = (await this.#o.client.xreadgroup(
        'GROUP',
        PERSIST_GROUP,
        this.consumer,
        'COUNT',
        this.#o.batchSize,
        'STREAMS',
        k.stream,
        after,
      )) as [string, RawEntry[]][] | null
      return reply?.[0]?.[1] ?? []
    } catch (err) {
      return this.#readFailed(k, err, [])
    }
  }

  async #readFailed<T>(k: CouponKeys, err: unknown, empty: T): Promise<T> {
    if (err instanceof Error && err.message.startsWith('NOGROUP')) {
      // The stream was recreated without its group (deleted by hand, or written
      // after a partial loss): make the group and read it from the start.
      await this.#o.client
        .xgroup('CREATE', k.stream, PERSIST_GROUP, '0', 'MKSTREAM')
        .catch(() => {})
      return empty
    }
    throw toRedisFailure(err)
  }

  /** Reclaims entries left pending by a dead worker. */
  async #reclaim(couponId: number): Promise<number> {
    const k = this.#o.keys.coupon(couponId)
    const reply = (await this.#o.client
      .xautoclaim(
        k.stream,
        PERSIST_GROUP,
        this.consumer,
        this.#o.claimIdleMs,
        '0-0',
        'COUNT',
        this.#o.batchSize,
      )
      .catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('NOGROUP')) return null
        throw toRedisFailure(err)
      })) as [string, RawEntry[], string[]?] | null
    const claimed = (reply?.[1] ?? []).filter((e) => Array.isArray(e[1]))
    if (claimed.length === 0) return 0
    this.#o.logger.warn(
      { couponId, entries: claimed.length },
      'reclaimed wins left pending by another worker',
    )
    // Deliveries so far: an entry that keeps killing its worker must not loop forever.
    const pending = (await this.#o.client.xpending(
      k.stream,
      PERSIST_GROUP,
      claimed[0]?.[0] ?? '-',
      (claimed.at(-1) as RawEntry)[0],
      claimed.length,
      this.consumer,
    )) as [string, string, number, number][]
    const deliveries = new Map(pending.map(([id, , , n]) => [id, Number(n)]))
    const parsed = await this.#parse(couponId, k, claimed)
    const live: StreamWin[] = []
    for (const entry of parsed) {
      const n = deliveries.get(entry.id) ?? 1
      if (n > this.#o.maxAttempts)
        await this.#deadLetter(k, entry, `delivered ${n} times without being persisted`)
      else live.push(entry)
    }
    await this.#persist(couponId, live)
    return claimed.length
  }

  /** Well-formed wins; malformed entries go straight to the dead letters. */
  async #parse(couponId: number, k: CouponKeys, entries: RawEntry[]): Promise<StreamWin[]> {
    const wins: StreamWin[] = []
    for (const entry of entries) {
      const parsed = parseEntry(couponId, entry)
      if (parsed) wins.push(parsed)
      else await this.#deadLetterRaw(k, entry, 'malformed entry: expected fields u, r, t')
    }
    return wins
  }

  /**
   * #persist for a batch of packed wins, with the same transaction and guarantees,
   * and the wins never split into JS values. The gate is asked, still under the
   * row lock, only whether every win is its own, while the INSERT runs; any other
   * answer (or a win already in the database) rolls back and the batch takes the
   * win-by-win path.
   */
  async #persistPacked(couponId: number, k: CouponKeys, parts: PackedWins[]): Promise<void> {
    const last = parts.at(-1)
    if (!last) return
    // ids ascend: the last is the youngest
    await this.#waitPersistDelay(msOf(last.ids.slice(last.ids.lastIndexOf(',') + 1)))
    const wins = {
      couponId,
      users: joined(parts, 'users'),
      ranks: joined(parts, 'ranks'),
      issuedAts: joined(parts, 'issuedAts'),
    }
    let inserted: number
    try {
      inserted = await this.#o.db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [couponId])
        const [insert, verify] = await Promise.allSettled([
          insertNewWins(trx, wins, new Date()),
          this.#verifyPacked(k, parts),
        ])
        if (verify.status === 'rejected') throw verify.reason
        if (insert.status === 'rejected') throw insert.reason
        await addIssuedQuantity(trx, couponId, insert.value)
        return insert.value
      })
    } catch (err) {
      const entries = parts.flatMap((p) => unpackWins(couponId, p))
      // Not all the gate's, or some already persisted: the win-by-win path (which
      // verifies each win and inserts idempotently) sorts them out.
      if (err instanceof NotAllKnown || isUniqueViolation(err))
        await this.#persist(couponId, entries)
      else await this.#failed(couponId, entries, err)
      return
    }
    await Promise.all(parts.map((p) => this.#ackIds(k, p.ids)))
    this.#o.metrics?.persisted.inc(inserted)
  }

  /** Throws unless the gate is loaded and every packed win is the gate's. */
  async #verifyPacked(k: CouponKeys, parts: PackedWins[]) {
    const answers = await Promise.all(
      parts.map((p) => scripts.verify.run(this.#o.client, [k.meta, k.users], [p.users, p.ranks])),
    ).catch((err: unknown) => {
      throw toRedisFailure(err)
    })
    if (answers.includes(-1)) throw new GateNotLoaded()
    const mismatches = answers.reduce<number>((n, a) => n + Number(a), 0)
    if (mismatches > 0) throw new NotAllKnown(mismatches)
  }

  async #persist(couponId: number, entries: StreamWin[]): Promise<void> {
    if (entries.length === 0) return
    const k = this.#o.keys.coupon(couponId)
    await this.#waitPersistDelay(entries.reduce((max, e) => Math.max(max, msOf(e.id)), 0))
    let verified: { known: StreamWin[]; unknown: StreamWin[]; inserted: number }
    try {
      verified = await this.#o.db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [couponId])
        const { known, unknown } = await this.#verify(k, entries)
        const inserted = await insertWins(
          trx,
          known.map((e) => e.win),
          new Date(),
        )
        await addIssuedQuantity(trx, couponId, inserted)
        return { known, unknown, inserted }
      })
    } catch (err) {
      await this.#failed(couponId, entries, err)
      return
    }
    await this.#ack(k, verified.known)
    for (const entry of verified.unknown) {
      await this.#deadLetter(
        k,
        entry,
        'not in the gate: its Redis state was lost before the win was persisted',
      )
    }
    for (const e of entries) this.#attempts.delete(e.id)
    this.#o.metrics?.persisted.inc(verified.inserted)
  }

  /**
   * Splits the wins the gate knows (same user, same rank) from the others. With
   * no gate state at all (lost, not yet rebuilt) nothing can be told apart:
   * GateNotLoaded, and the batch waits for the rebuild, which will count the wins
   * still in the stream.
   */
  async #verify(k: CouponKeys, entries: StreamWin[]) {
    const [loaded, values] = await Promise.all([
      this.#o.client.exists(k.meta),
      this.#o.client.hmget(k.users, ...entries.map((e) => e.win.userId)),
    ]).catch((err: unknown) => {
      throw toRedisFailure(err)
    })
    if (loaded === 0) throw new GateNotLoaded()
    const known: StreamWin[] = []
    const unknown: StreamWin[] = []
    entries.forEach((e, i) => {
      const value = values[i]
      const rank = value ? value.slice(0, value.indexOf(':')) : null
      if (rank === String(e.win.rank)) known.push(e)
      else unknown.push(e)
    })
    return { known, unknown }
  }

  async #failed(couponId: number, entries: StreamWin[], err: unknown) {
    if (err instanceof GateNotLoaded) {
      // Hold the batch, have the gate rebuilt (outside the transaction: the rebuild
      // takes the coupon's row lock), and retry after the usual back-off.
      this.#retry.set(couponId, [...(this.#retry.get(couponId) ?? []), ...entries])
      await this.#o.loadGate?.(couponId).catch(() => {})
      throw err
    }
    if (err instanceof UnavailableError || isTransientDbError(err)) {
      // Keep the whole batch in hand (still pending in Redis) and let the loop back off.
      this.#retry.set(couponId, [...(this.#retry.get(couponId) ?? []), ...entries])
      throw err
    }
    if (entries.length > 1) {
      // Something in the batch is poison: persist one by one to isolate it.
      for (const entry of entries) await this.#persist(couponId, [entry])
      return
    }
    const entry = entries[0] as StreamWin
    const attempts = (this.#attempts.get(entry.id) ?? 0) + 1
    this.#attempts.set(entry.id, attempts)
    const reason = err instanceof Error ? err.message : String(err)
    if (attempts >= this.#o.maxAttempts) {
      this.#attempts.delete(entry.id)
      await this.#deadLetter(
        this.#o.keys.coupon(couponId),
        entry,
        `rejected ${attempts} times: ${reason}`,
      )
    } else {
      this.#warn(err, 'a win was rejected by the database; will retry')
      this.#retry.set(couponId, [...(this.#retry.get(couponId) ?? []), entry])
    }
  }

  async #ack(k: CouponKeys, entries: StreamWin[]) {
    if (entries.length > 0) await this.#ackIds(k, entries.map((e) => e.id).join(','))
  }

  /** ids joined by commas */
  async #ackIds(k: CouponKeys, ids: string) {
    await scripts.ack.run(this.#o.client, [k.stream], [PERSIST_GROUP, ids])
  }

  #deadLetter(k: CouponKeys, entry: StreamWin, reason: string) {
    const w = entry.win
    return this.#deadLetterRaw(
      k,
      [entry.id, ['u', w.userId, 'r', String(w.rank), 't', String(w.issuedAt)]],
      reason,
    )
  }

  async #deadLetterRaw(k: CouponKeys, [id, fields]: RawEntry, reason: string) {
    await scripts.deadLetter.run(
      this.#o.client,
      [k.stream, k.dead],
      [PERSIST_GROUP, id, reason, ...(fields ?? [])],
    )
    this.#o.metrics?.deadLettered.inc()
    this.#o.logger.error(
      { stream: k.stream, entry: id, reason },
      'win moved to the dead-letter stream',
    )
  }

  /** youngest: when the batch's newest win was queued (epoch ms) */
  async #waitPersistDelay(youngest: number) {
    if (this.#o.persistDelayMs <= 0) return
    const wait = youngest + this.#o.persistDelayMs - Date.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  }

  #warn(err: unknown, msg: string) {
    const now = Date.now()
    if (now - this.#lastWarnAt < 5000) return
    this.#lastWarnAt = now
    this.#o.logger.warn({ err }, msg)
  }
}
