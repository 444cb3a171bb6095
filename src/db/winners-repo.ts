/**
 * A coupon's persisted wins by rank, each with its partner code (code number
 * rank), read through a database cursor: PostgreSQL's with pg-cursor, mysql2's
 * streaming query, node:sqlite's statement iterator. A chunk is read only when the
 * one before it has been taken, so a million rows are never in memory at once.
 */
import type { Db } from './database.js'
import { toDate } from './schema.js'

export interface WinnerRow {
  rank: number
  userId: string
  issuedAt: Date
  usedAt: Date | null
  orderId: string | null
  code: string | null
}

/** Rows fetched per cursor read (PostgreSQL); the other drivers read as the consumer takes. */
export const CURSOR_CHUNK = 1000

export async function* streamWinners(db: Db, couponId: number): AsyncGenerator<WinnerRow> {
  const rows = db
    .selectFrom('coupon_issues as i')
    .leftJoin('coupon_codes as c', (join) =>
      join.onRef('c.coupon_id', '=', 'i.coupon_id').onRef('c.seq', '=', 'i.rank'),
    )
    .select(['i.rank', 'i.user_id', 'i.date_issued', 'i.date_used', 'i.order_id', 'c.code'])
    .where('i.coupon_id', '=', couponId)
    .orderBy('i.rank')
    .stream(CURSOR_CHUNK)
  for await (const r of rows) {
    yield {
      rank: Number(r.rank),
      userId: r.user_id,
      issuedAt: toDate(r.date_issued),
      usedAt: r.date_used === null ? null : toDate(r.date_used),
      orderId: r.order_id,
      code: r.code,
    }
  }
}
