/**
 * One coupon's stream as a stream worker sees it, through the persist group: it
 * reads new entries, this consumer's own pending entries, and those a dead
 * consumer left pending (XAUTOCLAIM); it acknowledges persisted entries (ack.lua)
 * and moves those that cannot be persisted to the dead-letter stream. What to
 * persist, how and when is the worker's and its persist strategy's (persist/).
 */
import type { Logger } from 'pino'
import { entryFields, parseEntry, type RawEntry, type StreamWin } from '../coupon-state/entries.js'
import { type CouponKeys, PERSIST_GROUP, type RedisKeys } from '../coupon-state/keys.js'
import { scripts } from '../coupon-state/scripts.js'
import type { Metrics } from '../ops/metrics.js'
import type { RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'

/** Entries taken over from another consumer, with how many times each was delivered. */
export interface Claimed {
  entries: RawEntry[]
  deliveries: Map<string, number>
}

/** A reply of field, value, field, value… (XINFO) as a map. */
function fieldsOf(raw: unknown): Map<string, unknown> {
  const map = new Map<string, unknown>()
  if (!Array.isArray(raw)) return map
  for (let i = 0; i + 1 < raw.length; i += 2) map.set(String(raw[i]), raw[i + 1])
  return map
}

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
  /** how long an entry stays pending on a dead consumer before it is reclaimed */
  claimIdleMs: number
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

  /** this worker's name in the persist group */
  get consumer(): string {
    return this.#o.consumer
  }

  /** Entries never delivered, a read's worth (XREADGROUP `>`). */
  readNew(): Promise<RawEntry[]> {
    return this.#read('>')
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
  #read(after: string): Promise<RawEntry[]> {
    return this.reading(async () => {
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
    }, [])
  }

  /**
   * Runs a read of this consumer's through the persist group. A stream recreated
   * without its group (deleted by hand, or written after a partial loss) gets the
   * group back, to be read from the start, and this read answers `empty`.
   */
  async reading<T>(read: () => Promise<T>, empty: T): Promise<T> {
    try {
      return await read()
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('NOGROUP'))) throw toRedisFailure(err)
      await this.#o.client
        .xgroup('CREATE', this.keys.stream, PERSIST_GROUP, '0', 'MKSTREAM')
        .catch(() => {})
      return empty
    }
  }

  /**
   * Takes over the entries left pending idle for claimIdleMs, whoever holds them
   * (a worker presumed dead, though its heartbeat may say otherwise: frozen, or a
   * worker without one), a read's worth from the cursor `start`, with how many
   * times each has been delivered so far (an entry that keeps killing its worker
   * must not loop forever), and where the next page starts ('0-0': none left).
   */
  async claim(start = '0-0'): Promise<Claimed & { next: string }> {
    const reply = (await this.#o.client
      .xautoclaim(
        this.keys.stream,
        PERSIST_GROUP,
        this.#o.consumer,
        this.#o.claimIdleMs,
        start,
        'COUNT',
        this.#o.batchSize,
      )
      .catch((err: unknown) => {
        if (err instanceof Error && err.message.startsWith('NOGROUP')) return null
        throw toRedisFailure(err)
      })) as [string, RawEntry[], string[]?] | null
    const next = reply?.[0] ?? '0-0'
    const claimed = (reply?.[1] ?? []).filter((e) => Array.isArray(e[1]))
    if (claimed.length === 0) return { entries: [], deliveries: new Map(), next }
    this.#reclaimed(claimed.length, null)
    const pending = (await this.#o.client.xpending(
      this.keys.stream,
      PERSIST_GROUP,
      claimed[0]?.[0] ?? '-',
      (claimed.at(-1) as RawEntry)[0],
      claimed.length,
      this.#o.consumer,
    )) as [string, string, number, number][]
    return {
      entries: claimed,
      deliveries: new Map(pending.map(([id, , , n]) => [id, Number(n)])),
      next,
    }
  }

  /**
   * The consumers of the persist group, other than this one, whose worker is
   * dead: no heartbeat among `alive`, and idle in Redis (no read, no claim) for at
   * least `idleMs` — the second condition keeps a worker that has not stamped its
   * first heartbeat yet, or whose host clock is off, from being taken for dead.
   */
  async deadConsumers(alive: ReadonlySet<string>, idleMs: number): Promise<string[]> {
    const reply = await this.reading(
      () =>
        this.#o.client.xinfo('CONSUMERS', this.keys.stream, PERSIST_GROUP) as Promise<unknown[]>,
      [],
    )
    const dead: string[] = []
    for (const raw of reply) {
      const info = fieldsOf(raw)
      const name = String(info.get('name'))
      if (name === this.#o.consumer || alive.has(name)) continue
      if (Number(info.get('idle')) >= idleMs) dead.push(name)
    }
    return dead
  }

  /**
   * Takes over a read's worth of the entries pending on `owner` (a dead worker's:
   * deadConsumers) that have been idle for `idleMs` (so that two workers
   * reclaiming from the same owner at once do not take them from each other),
   * with their deliveries. `taken` 0: none are left on it. Every call that finds
   * some shrinks what the owner holds (taken here, or by another worker first, or
   * dropped by XCLAIM as deleted from the stream), so a loop over it ends.
   */
  async claimFrom(owner: string, idleMs: number): Promise<Claimed & { taken: number }> {
    const pending = (await this.#o.client.xpending(
      this.keys.stream,
      PERSIST_GROUP,
      'IDLE',
      idleMs,
      '-',
      '+',
      this.#o.batchSize,
      owner,
    )) as [string, string, number, number][]
    if (pending.length === 0) return { entries: [], deliveries: new Map(), taken: 0 }
    const reply = (await this.#o.client.xclaim(
      this.keys.stream,
      PERSIST_GROUP,
      this.#o.consumer,
      idleMs,
      ...pending.map(([id]) => id),
    )) as RawEntry[]
    // An entry pending but deleted from the stream comes back without fields
    // (Redis < 7) or not at all (7 drops it from the pending list): nothing is
    // left to persist.
    const claimed = reply.filter((e) => Array.isArray(e?.[1]))
    const gone = reply.filter((e) => e && !Array.isArray(e[1])).map(([id]) => id)
    if (gone.length > 0) await this.#o.client.xack(this.keys.stream, PERSIST_GROUP, ...gone)
    if (claimed.length > 0) this.#reclaimed(claimed.length, owner)
    // XCLAIM counts a delivery.
    const deliveries = new Map(pending.map(([id, , , n]) => [id, Number(n) + 1]))
    return { entries: claimed, deliveries, taken: pending.length }
  }

  /** Drops a dead worker's consumer if it holds nothing (forget-consumer.lua). */
  async forget(owner: string): Promise<void> {
    await scripts.forgetConsumer.run(this.#o.client, [this.keys.stream], [PERSIST_GROUP, owner])
  }

  #reclaimed(entries: number, owner: string | null) {
    this.#o.metrics?.reclaimed.inc({ coupon: String(this.couponId) }, entries)
    this.#o.logger.warn(
      { event: 'wins.reclaimed', couponId: this.couponId, entries, ...(owner ? { owner } : {}) },
      owner
        ? 'reclaimed wins left pending by a dead worker'
        : 'reclaimed wins left pending by another worker',
    )
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
