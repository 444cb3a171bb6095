/**
 * The persistence worker of Redis mode: drains every coupon's stream into
 * coupon_issues. Any number may run at once (members of one consumer group).
 * What happens on each fault is the table in docs/architecture.md ("Redis mode:
 * the stream worker").
 *
 * This is its loop. Each pass, for every coupon: the batch held for another
 * attempt, else the new entries, a transaction's worth at a time (the next read
 * while the last is written); then, every second, all the entries of workers
 * known dead (their heartbeat gone: Heartbeats), and every WORKER_CLAIM_IDLE_MS
 * / 2 all those idle that long whoever holds them. CouponStream is the Redis side
 * of a coupon's stream; the persist strategy (persist/) reads and writes new
 * entries; RowPersister writes every other batch and holds what failed
 * (persist/held.ts says why in memory).
 */
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { StreamWin } from '../coupon-state/entries.js'
import type { RedisKeys } from '../coupon-state/keys.js'
import type { Db } from '../db/database.js'
import { ALIVE_MS, BEAT_EVERY_MS, type Heartbeats } from '../ops/heartbeats.js'
import type { Metrics } from '../ops/metrics.js'
import type { RedisClient } from '../redis/connection.js'
import { type Claimed, CouponStream, type CouponStreamOptions } from './coupon-stream.js'
import { PackedStrategy } from './persist/packed.js'
import { RowPersister } from './persist/rows.js'
import { RowsStrategy } from './persist/rows-strategy.js'
import { NOTHING, type PersistKind, type PersistStrategy } from './persist/strategy.js'
import { StreamDirectory } from './stream-directory.js'

const MAX_IDLE_MS = 100
/** transactions of one coupon's backlog per pass, before the other coupons get a turn */
const MAX_TX_PER_PASS = 5
const MAX_BACKOFF_MS = 2000
/** how often the streams are checked for consumers whose worker is dead */
const DEAD_CHECK_MS = 1000

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
   * Rebuilds a coupon whose Redis state is missing (CouponState.ensureLoaded; the
   * worker then persists the wins it holds, or dead-letters those the rebuilt
   * state lacks). Without it the worker holds them until a request rebuilds it.
   */
  ensureLoaded?: (couponId: number) => Promise<boolean>
  /**
   * Marks a coupon's gate behind the database (CouponState.markBehind): the
   * database refused a rank the gate gave, so Redis lost data.
   */
  markBehind?: (couponId: number) => Promise<void>
  /** wait until a win is this old before persisting it (see docs: AOF everysec) */
  persistDelayMs?: number
  /**
   * After a pass that found no backlog, wait this long before the next: at a steady
   * few thousand wins a second, back-to-back passes would each persist a handful,
   * and every pass costs the same round trips and a transaction whatever it holds.
   */
  lingerMs?: number
  consumer?: string
  /**
   * The fleet's heartbeats: this worker stamps its own every second while it
   * runs, and takes over at once, all of them, the entries pending on a worker
   * whose heartbeat has stopped. Without it, only entries idle for claimIdleMs
   * are reclaimed.
   */
  heartbeats?: Heartbeats
  /** how new entries are read and written (persistKindFor(dialect)); default rows */
  persist?: PersistKind
}

export class RedisStreamWorker {
  readonly consumer: string
  readonly #o: Required<
    Omit<StreamWorkerOptions, 'metrics' | 'ensureLoaded' | 'heartbeats' | 'markBehind'>
  > &
    Pick<StreamWorkerOptions, 'metrics' | 'ensureLoaded' | 'heartbeats' | 'markBehind'>
  readonly #directory: StreamDirectory
  /** the last pass found nothing to do: the next reads the stream set afresh */
  #idle = false
  readonly #streamOptions: CouponStreamOptions
  readonly #rows: RowPersister
  readonly #newWins: PersistStrategy
  #nextClaimAt = 0
  #nextDeadCheckAt = 0
  #beating: NodeJS.Timeout | undefined
  /**
   * A pass failed, or the connection came back: entries may be pending on this
   * consumer that nothing holds (an XREADGROUP reply or an ack lost with the
   * connection), to be read again now rather than wait WORKER_CLAIM_IDLE_MS.
   */
  #recoverOwn = false
  #running: Promise<void> | null = null
  #stopping = false
  #wake: (() => void) | null = null
  #lastWarnAt = 0

  constructor(options: StreamWorkerOptions) {
    this.consumer = options.consumer ?? `${hostname()}-${process.pid}-${Date.now().toString(36)}`
    const o = {
      persistDelayMs: 0,
      lingerMs: 0,
      persist: 'rows' as const,
      ...options,
      consumer: this.consumer,
    }
    this.#o = o
    this.#directory = new StreamDirectory(o.client, o.keys, o.db)
    this.#streamOptions = o
    this.#rows = new RowPersister({
      ...o,
      warn: (err, msg) => this.#warn(err, msg),
      lost: (entry, cause, reason) =>
        o.logger.error(
          {
            event: 'win.lost',
            couponId: entry.win.couponId,
            userId: entry.win.userId,
            rank: entry.win.rank,
            requestId: entry.win.requestId,
            cause,
          },
          `an answered win is lost: ${reason}`,
        ),
    })
    this.#newWins =
      o.persist === 'packed' ? new PackedStrategy(this.#rows, o) : new RowsStrategy(this.#rows, o)
  }

  start(): this {
    if (!this.#running) {
      this.#o.client.on('ready', this.#reconnected)
      const beats = this.#o.heartbeats
      if (beats) {
        beats.beat(this.consumer)
        this.#beating = setInterval(() => beats.beat(this.consumer), BEAT_EVERY_MS)
        this.#beating.unref()
      }
    }
    this.#running ??= this.#loop()
    return this
  }

  /**
   * After a reconnect, this consumer's own entries are read again even if no pass
   * failed: ioredis sends a read that was in flight again, so the first run's
   * delivery can stay pending here with nothing holding it (and would otherwise
   * wait WORKER_CLAIM_IDLE_MS for a reclaim).
   */
  readonly #reconnected = () => {
    this.#recoverOwn = true
  }

  /** Finishes the batch in hand, then resolves. */
  async stop(): Promise<void> {
    this.#o.client.off('ready', this.#reconnected)
    clearInterval(this.#beating)
    this.#stopping = true
    this.#wake?.()
    await this.#running
  }

  /** One pass over every coupon stream; the number of entries handled. */
  async drainOnce(): Promise<number> {
    let handled = 0
    const claimDue = Date.now() >= this.#nextClaimAt
    const alive = await this.#aliveIfDue()
    const recoverOwn = this.#recoverOwn
    let recovered = true
    for (const couponId of await this.#directory.couponIds(this.#idle)) {
      if (this.#stopping) break
      const stream = new CouponStream(this.#streamOptions, couponId)
      if (recoverOwn) {
        // Not while a batch is held for a retry: re-reading it would only raise its
        // delivery count (see persist/held.ts).
        if (this.#rows.held.of(couponId)?.length) recovered = false
        else handled += await this.#recoverOwnPending(stream)
      }
      handled += await this.#drainCoupon(stream)
      if (alive) handled += await this.#reclaimDead(stream, alive)
      if (claimDue) handled += await this.#reclaim(stream)
    }
    if (recoverOwn && recovered && !this.#stopping) this.#recoverOwn = false
    if (claimDue) this.#nextClaimAt = Date.now() + Math.max(100, this.#o.claimIdleMs / 2)
    if (alive) this.#nextDeadCheckAt = Date.now() + DEAD_CHECK_MS
    return handled
  }

  /** The workers alive, when a check for dead ones is due (and this worker has heartbeats). */
  async #aliveIfDue(): Promise<ReadonlySet<string> | null> {
    if (!this.#o.heartbeats || Date.now() < this.#nextDeadCheckAt) return null
    return this.#o.heartbeats.aliveMembers()
  }

  async #loop() {
    let idleMs = 0
    while (!this.#stopping) {
      let handled = 0
      try {
        handled = await this.drainOnce()
        this.#idle = handled === 0
        idleMs = handled > 0 ? 0 : Math.min(MAX_IDLE_MS, Math.max(5, idleMs * 2))
        this.#o.metrics?.workerPasses.inc({ result: 'ok' })
      } catch (err) {
        this.#recoverOwn = true
        idleMs = Math.min(MAX_BACKOFF_MS, Math.max(50, idleMs * 2))
        this.#o.metrics?.workerPasses.inc({ result: 'error' })
        this.#warn(err, 'stream worker pass failed; backing off')
      }
      this.#o.heartbeats?.beat(this.consumer)
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

  async #drainCoupon(stream: CouponStream): Promise<number> {
    const retry = this.#rows.held.take(stream.couponId)
    if (retry) {
      await this.#rows.persist(stream, retry)
      return retry.length
    }
    let batch = await this.#newWins.readNew(stream)
    let handled = 0
    for (let tx = 1; batch.size > 0; tx++) {
      // A full transaction means a backlog: read the next one while this one is
      // written. (If the write fails, what was read stays pending on this consumer
      // and the next pass recovers it.)
      const next =
        batch.size >= this.#o.txRows && tx < MAX_TX_PER_PASS ? this.#newWins.readNew(stream) : null
      // The read may fail (a Redis command timing out) while the write is still in
      // progress, before anything awaits it: unheard, that ends the process.
      next?.catch(() => {})
      try {
        await batch.persist()
      } catch (err) {
        await next?.catch(() => {})
        throw err
      }
      handled += batch.size
      batch = next ? await next : NOTHING
    }
    return handled
  }

  /**
   * Persists again the entries pending on this consumer that it does not hold for
   * a retry (see `#recoverOwn`); the idempotent insert makes a repeat harmless.
   */
  async #recoverOwnPending(stream: CouponStream): Promise<number> {
    let handled = 0
    let after = '0'
    for (;;) {
      const { entries, last } = await stream.readPending(after)
      if (last === undefined) return handled
      after = last
      const held = new Set(this.#rows.held.of(stream.couponId)?.map((e) => e.id))
      const orphans = entries.filter(([id]) => !held.has(id))
      if (orphans.length === 0) continue
      this.#o.logger.warn(
        { couponId: stream.couponId, entries: orphans.length },
        'persisting wins left pending on this worker by a failed pass',
      )
      await this.#rows.persist(stream, await stream.parse(orphans))
      handled += orphans.length
    }
  }

  /**
   * Reclaims the entries idle for claimIdleMs whoever holds them (a worker
   * frozen, wedged, or dead without a heartbeat to say so), page after page until
   * the cursor comes back to the start.
   *
   * A delivery count alone never dead-letters a win. Counts rise for reasons that
   * say nothing about the entry: every XAUTOCLAIM raises them, and an outage
   * longer than WORKER_CLAIM_IDLE_MS has live workers reclaim each other's held
   * batches (and re-read their own pending entries after each failed pass; see
   * persist/held.ts), so an outage of any length would push answered wins past
   * any bound. An entry
   * delivered more than WORKER_MAX_ATTEMPTS times (it may be what keeps killing its
   * worker) is only set apart: persisted in a transaction of its own, where it
   * takes no other win down with it and where it is dead-lettered only if the
   * database refuses that row itself (RowPersister: a row error, repeatedly).
   */
  async #reclaim(stream: CouponStream): Promise<number> {
    let handled = 0
    let start = '0-0'
    do {
      const claimed = await stream.claim(start)
      handled += await this.#persistClaimed(stream, claimed)
      start = claimed.next
    } while (start !== '0-0' && !this.#stopping)
    return handled
  }

  /**
   * Takes over every entry pending on a worker known dead (its heartbeat stopped
   * ALIVE_MS ago and Redis has seen nothing of it since), page after page until
   * none are left: a dead worker's wins wait for no idle bound. A live worker's
   * entries are left to it (or to `#reclaim`, after claimIdleMs). The dead
   * worker's consumer, emptied, is then dropped, so the list checked each second
   * does not grow with every worker that ever ran.
   */
  async #reclaimDead(stream: CouponStream, alive: ReadonlySet<string>): Promise<number> {
    let handled = 0
    for (const owner of await stream.deadConsumers(alive, ALIVE_MS)) {
      for (;;) {
        if (this.#stopping) return handled
        const claimed = await stream.claimFrom(owner, ALIVE_MS)
        if (claimed.taken === 0) break
        handled += await this.#persistClaimed(stream, claimed)
      }
      await stream.forget(owner)
    }
    return handled
  }

  /** Persists reclaimed entries; those delivered too often, each on its own (see `#reclaim`). */
  async #persistClaimed(stream: CouponStream, { entries, deliveries }: Claimed): Promise<number> {
    if (entries.length === 0) return 0
    const batch: StreamWin[] = []
    const apart: StreamWin[] = []
    for (const entry of await stream.parse(entries))
      ((deliveries.get(entry.id) ?? 1) > this.#o.maxAttempts ? apart : batch).push(entry)
    await this.#rows.persist(stream, batch)
    await this.#rows.persistAlone(stream, apart)
    return entries.length
  }

  #warn(err: unknown, msg: string) {
    const now = Date.now()
    if (now - this.#lastWarnAt < 5000) return
    this.#lastWarnAt = now
    this.#o.logger.warn({ event: 'worker.error', err }, msg)
  }
}
