/**
 * One coupon's stream as a stream worker sees it, through the persist group: the
 * Redis side of the worker. It reads new entries (packed as columns by
 * read-wins.lua where the database takes them so), this consumer's own pending
 * entries, and those a dead consumer left pending (XAUTOCLAIM); it acknowledges
 * persisted entries (ack.lua) and moves those that cannot be persisted to the
 * dead-letter stream. What to persist, and when, is the worker's.
 */
import type { Logger } from 'pino'
import {
  entryFields,
  type PackedWins,
  parseEntry,
  type RawEntry,
  type StreamWin,
} from '../coupon-state/entries.js'
import { type CouponKeys, PERSIST_GROUP, type RedisKeys } from '../coupon-state/keys.js'
import { scripts } from '../coupon-state/scripts.js'
import type { Metrics } from '../ops/metrics.js'
import type { RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'

/**
 * New entries as read-wins.lua delivers them: the packed wins of each read (kept
 * apart: each script call on them handles one read's worth, so none holds Redis
 * much longer than one XREADGROUP did), and the other entries raw.
 */
export interface Delivery {
  parts: PackedWins[]
  others: RawEntry[]
}

export const NOTHING: Delivery = { parts: [], others: [] }
/** the entries of a delivery */
export const size = (d: Delivery) => d.parts.reduce((n, p) => n + p.count, d.others.length)

/** What every coupon's stream of one worker shares. */
export interface CouponStreamOptions {
  client: RedisClient
  keys: RedisKeys
  /** this worker's name in the persist group */
  consumer: string
  logger: Logger
  metrics?: Metrics | undefined
  /** entries per read (WORKER_BATCH_SIZE) */
  batchSize: number
  /** entries per read of new ones when the stream has a backlog (WORKER_TX_ROWS) */
  txRows: number
  /** how long an entry stays pending on a dead consumer before it is reclaimed */
  claimIdleMs: number
  /** new wins are read packed (read-wins.lua): the database takes the columns as they are */
  packed: boolean
}

export class CouponStream {
  readonly couponId: number
  readonly keys: Readonly<CouponKeys>
  readonly #o: CouponStreamOptions

  constructor(options: CouponStreamOptions, couponId: number) {
    this.#o = options
    this.couponId = couponId
    this.keys = options.keys.coupon(couponId)
  }

  /**
   * One transaction's worth of new entries: a read of WORKER_BATCH_SIZE, and when
   * that comes back full (a backlog), the reads up to WORKER_TX_ROWS at once (they
   * share one round trip); each read packs its wins as columns (read-wins.lua).
   */
  async readNew(): Promise<Delivery> {
    const first = await this.#readPacked()
    if (size(first) < this.#o.batchSize) return first
    const reads = Math.ceil(this.#o.txRows / this.#o.batchSize) - 1
    const rest = await Promise.all(Array.from({ length: reads }, () => this.#readPacked()))
    return {
      parts: [first, ...rest].flatMap((d) => d.parts),
      others: [first, ...rest].flatMap((d) => d.others),
    }
  }

  async #readPacked(): Promise<Delivery> {
    // Packed only for a database that takes the columns as they are; the others
    // get the entries raw, and the win-by-win path.
    if (!this.#o.packed) return { parts: [], others: await this.#read() }
    try {
      const [count, ids, users, ranks, issuedAts, others] = (await scripts.readWins.run(
        this.#o.client,
        [this.keys.stream],
        [PERSIST_GROUP, this.#o.consumer, this.#o.batchSize],
      )) as [number, string, string, string, string, RawEntry[]]
      return { parts: count > 0 ? [{ count, ids, users, ranks, issuedAts }] : [], others }
    } catch (err) {
      return this.#readFailed(err, NOTHING)
    }
  }

  /**
   * This consumer's pending entries after the id `after` ('0': from the first), a
   * read's worth, and the id to read after next (undefined: none are left).
   * Pending but deleted from the stream (fields nil): nothing left to persist, so
   * they are acknowledged here and left out of `entries`.
   */
  async readPending(after: string): Promise<{ entries: RawEntry[]; last: string | undefined }> {
    const read = await this.#read(after)
    const gone = read.filter(([, fields]) => !Array.isArray(fields)).map(([id]) => id)
    if (gone.length > 0) await this.#o.client.xack(this.keys.stream, PERSIST_GROUP, ...gone)
    return { entries: read.filter(([, fields]) => Array.isArray(fields)), last: read.at(-1)?.[0] }
  }

  /** `>`: entries never delivered; an id: this consumer's pending entries after it. */
  async #read(after = '>'): Promise<RawEntry[]> {
    try {
      const reply = (await this.#o.client.xreadgroup(
        'GROUP',
        PERSIST_GROUP,
        this.#o.consumer,
        'COUNT',
        this.#o.batchSize,
        'STREAMS',
        this.keys.stream,
        after,
      )) as [string, RawEntry[]][] | null
      return reply?.[0]?.[1] ?? []
    } catch (err) {
      return this.#readFailed(err, [])
    }
  }

  async #readFailed<T>(err: unknown, empty: T): Promise<T> {
    if (err instanceof Error && err.message.startsWith('NOGROUP')) {
      // The stream was recreated without its group (deleted by hand, or written
      // after a partial loss): make the group and read it from the start.
      await this.#o.client
        .xgroup('CREATE', this.keys.stream, PERSIST_GROUP, '0', 'MKSTREAM')
        .catch(() => {})
      return empty
    }
    throw toRedisFailure(err)
  }

  /**
   * Takes over the entries a dead worker left pending (idle for claimIdleMs), a
   * read's worth, with how many times each has been delivered so far: an entry
   * that keeps killing its worker must not loop forever.
   */
  async claim(): Promise<{ entries: RawEntry[]; deliveries: Map<string, number> }> {
    const reply = (await this.#o.client
      .xautoclaim(
        this.keys.stream,
        PERSIST_GROUP,
        this.#o.consumer,
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
    if (claimed.length === 0) return { entries: [], deliveries: new Map() }
    this.#o.metrics?.reclaimed.inc({ coupon: String(this.couponId) }, claimed.length)
    this.#o.logger.warn(
      { event: 'wins.reclaimed', couponId: this.couponId, entries: claimed.length },
      'reclaimed wins left pending by another worker',
    )
    const pending = (await this.#o.client.xpending(
      this.keys.stream,
      PERSIST_GROUP,
      claimed[0]?.[0] ?? '-',
      (claimed.at(-1) as RawEntry)[0],
      claimed.length,
      this.#o.consumer,
    )) as [string, string, number, number][]
    return { entries: claimed, deliveries: new Map(pending.map(([id, , , n]) => [id, Number(n)])) }
  }

  /** Well-formed wins; malformed entries go straight to the dead letters. */
  async parse(entries: RawEntry[]): Promise<StreamWin[]> {
    const wins: StreamWin[] = []
    for (const entry of entries) {
      const parsed = parseEntry(this.couponId, entry)
      if (parsed) wins.push(parsed)
      else await this.#deadLetterRaw(entry, 'malformed entry: expected fields u, r, t')
    }
    return wins
  }

  async ack(entries: StreamWin[]) {
    if (entries.length > 0) await this.ackIds(entries.map((e) => e.id).join(','))
  }

  /** ids joined by commas */
  async ackIds(ids: string) {
    await scripts.ack.run(this.#o.client, [this.keys.stream], [PERSIST_GROUP, ids])
  }

  deadLetter(entry: StreamWin, reason: string) {
    return this.#deadLetterRaw([entry.id, entryFields(entry.win)], reason)
  }

  async #deadLetterRaw([id, fields]: RawEntry, reason: string) {
    await scripts.deadLetter.run(
      this.#o.client,
      [this.keys.stream, this.keys.dead],
      [PERSIST_GROUP, id, reason, ...(fields ?? [])],
    )
    this.#o.metrics?.deadLettered.inc({ coupon: String(this.couponId) })
    this.#o.logger.error(
      { event: 'win.dead_lettered', couponId: this.couponId, entry: id, reason },
      'win moved to the dead-letter stream',
    )
  }
}
