/**
 * The `packed` strategy (PostgreSQL; see strategy.ts). New entries are read as
 * columns by read-wins.lua and go to the database and back to Redis unsplit: per
 * win, the worker does no JS work. One transaction, as on the row path
 * (persistVerifiedWins, packed: the gate asks verify.lua whether every win is its
 * own while the INSERT runs); then acknowledge (ack.lua).
 * Any other answer (a win the gate does not know) rolls back and the batch takes
 * the row path (rows.ts), which judges each win; so do the entries read-wins.lua
 * could not pack. So does a batch of which the insert skipped a win: a win
 * already a row (a spend persisted it) and a rank the database holds for another
 * user (migration 003) look alike here, and the row path tells them apart.
 */
import {
  msOf,
  type PackedWins,
  type RawEntry,
  type StreamWin,
  unpackWins,
} from '../../coupon-state/entries.js'
import { PERSIST_GROUP } from '../../coupon-state/keys.js'
import { scripts } from '../../coupon-state/scripts.js'
import { redisVerifier } from '../../coupon-state/verify.js'
import type { Db } from '../../db/database.js'
import { isUniqueViolation } from '../../db/errors.js'
import type { Metrics } from '../../ops/metrics.js'
import type { RedisClient } from '../../redis/connection.js'
import type { CouponStream } from '../coupon-stream.js'
import type { RowPersister } from './rows.js'
import { type NewWins, type PersistStrategy, type ReadSizes, readTransaction } from './strategy.js'
import { NotAllKnown, persistVerifiedWins, SomeSkipped, type WinWriter } from './verified-wins.js'

/**
 * One read as read-wins.lua delivers it: the packed wins (kept apart per read:
 * each script call on them handles one read's worth, so none holds Redis much
 * longer than one XREADGROUP did), and the other entries raw.
 */
interface Delivery {
  parts: PackedWins[]
  others: RawEntry[]
}

const EMPTY: Delivery = { parts: [], others: [] }
const sizeOf = (d: Delivery) => d.parts.reduce((n, p) => n + p.count, d.others.length)
const joined = (parts: PackedWins[], column: keyof Omit<PackedWins, 'count'>) =>
  parts.map((p) => p[column]).join(',')

export interface PackedStrategyOptions extends ReadSizes {
  client: RedisClient
  db: Db
  metrics?: Metrics | undefined
}

export class PackedStrategy implements PersistStrategy {
  readonly #rows: RowPersister
  readonly #o: PackedStrategyOptions
  readonly #writer: WinWriter

  constructor(rows: RowPersister, options: PackedStrategyOptions) {
    this.#rows = rows
    this.#o = options
    this.#writer = { db: options.db, writer: 'stream', metrics: options.metrics }
  }

  async readNew(stream: CouponStream): Promise<NewWins> {
    const reads = await readTransaction(this.#o, () => this.#read(stream), sizeOf)
    const parts = reads.flatMap((d) => d.parts)
    const others = reads.flatMap((d) => d.others)
    return {
      size: reads.reduce((n, d) => n + sizeOf(d), 0),
      persist: async () => {
        if (others.length > 0) await this.#rows.persist(stream, await stream.parse(others))
        await this.#persist(stream, parts)
      },
    }
  }

  #read(stream: CouponStream): Promise<Delivery> {
    return stream.reading(async () => {
      const [count, ids, users, ranks, issuedAts, requestIds, others] = (await scripts.readWins.run(
        this.#o.client,
        [stream.keys.stream],
        [PERSIST_GROUP, stream.consumer, this.#o.batchSize],
      )) as [number, string, string, string, string, string, RawEntry[]]
      const part = { count, ids, users, ranks, issuedAts, requestIds }
      return { parts: count > 0 ? [part] : [], others }
    }, EMPTY)
  }

  async #persist(stream: CouponStream, parts: PackedWins[]): Promise<void> {
    const last = parts.at(-1)
    if (!last) return
    const { couponId } = stream
    // ids ascend: the last is the youngest
    await this.#rows.waitPersistDelay(msOf(last.ids.slice(last.ids.lastIndexOf(',') + 1)))
    const count = parts.reduce((n, p) => n + p.count, 0)
    const columns = {
      couponId,
      users: joined(parts, 'users'),
      ranks: joined(parts, 'ranks'),
      issuedAts: joined(parts, 'issuedAts'),
      requestIds: joined(parts, 'requestIds'),
    }
    try {
      await persistVerifiedWins(
        this.#writer,
        couponId,
        { columns, parts, count },
        redisVerifier(this.#o.client, stream.keys),
      )
    } catch (err) {
      const entries: StreamWin[] = parts.flatMap((p) => unpackWins(couponId, p))
      // Not all the gate's, some skipped, or another unique key refused a row: the
      // row path (which verifies each win, inserts idempotently and tells a row
      // already there from a refused rank) sorts them out.
      if (err instanceof NotAllKnown || err instanceof SomeSkipped || isUniqueViolation(err))
        await this.#rows.persist(stream, entries)
      else await this.#rows.failed(stream, entries, err)
      return
    }
    await Promise.all(parts.map((p) => stream.ackIds(p.ids)))
  }
}
