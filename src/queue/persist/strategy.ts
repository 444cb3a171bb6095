/**
 * How a worker reads and writes first deliveries, chosen once by the composition
 * root: `rows` on every dialect (entries read as XREADGROUP returns them, written
 * win by win: rows.ts), `packed` on PostgreSQL (read as columns by read-wins.lua,
 * which the database splits itself: packed.ts). Everything else a worker
 * persists (held, pending, reclaimed entries) takes the row path either way.
 */
import type { Dialect } from '../../config.js'
import type { CouponStream } from '../coupon-stream.js'

export type PersistKind = 'rows' | 'packed'

/** The strategy for a dialect: packed where the database takes the columns as they are. */
export function persistKindFor(dialect: Dialect): PersistKind {
  return dialect === 'postgres' ? 'packed' : 'rows'
}

/** New entries read and not yet written. */
export interface NewWins {
  /** how many entries were read */
  readonly size: number
  /** writes them (one transaction, more on a fallback) and acknowledges them */
  persist(): Promise<void>
}

export const NOTHING: NewWins = { size: 0, persist: async () => {} }

export interface PersistStrategy {
  /** One transaction's worth of new entries of the coupon, delivered to this consumer. */
  readNew(stream: CouponStream): Promise<NewWins>
}

/** What a strategy reads per transaction. */
export interface ReadSizes {
  /** entries per read (WORKER_BATCH_SIZE) */
  batchSize: number
  /** entries per transaction when the stream has a backlog (WORKER_TX_ROWS) */
  txRows: number
}

/**
 * A read of WORKER_BATCH_SIZE, and when that comes back full (a backlog), the
 * reads up to WORKER_TX_ROWS at once (they share one round trip).
 */
export async function readTransaction<T>(
  sizes: ReadSizes,
  readOnce: () => Promise<T>,
  size: (read: T) => number,
): Promise<T[]> {
  const first = await readOnce()
  if (size(first) < sizes.batchSize) return [first]
  const reads = Math.ceil(sizes.txRows / sizes.batchSize) - 1
  return [first, ...(await Promise.all(Array.from({ length: reads }, readOnce)))]
}
