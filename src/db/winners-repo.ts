/**
 * A coupon's persisted wins by rank, each with its partner code (code number
 * rank), in batches read only when the one before has been taken, so a million
 * rows are never in memory at once:
 *
 * - PostgreSQL and MySQL through a database cursor (pg-cursor, mysql2's streaming
 *   query), on a connection of the export's own pool;
 * - SQLite a page at a time by rank (`rank > last … limit`), each page one short
 *   read off the (coupon_id, rank) index. A statement held open for the whole
 *   download would hold a read transaction as long as the client takes, and the
 *   write-ahead log could not be checkpointed past it meanwhile; a page is read
 *   in one synchronous call, not a row per promise.
 */
import { type Db, dialectOf } from './database.js'
import { toDate } from './schema.js'

export interface WinnerRow {
  rank: number
  userId: string
  issuedAt: Date
  usedAt: Date | null
  orderId: string | null
  code: string | null
}

/** Rows per batch (a cursor read on PostgreSQL, a page on SQLite). */
export const CURSOR_CHUNK = 1000

function query(db: Db, couponId: number) {
  return db
    .selectFrom('coupon_issues as i')
    .leftJoin('coupon_codes as c', (join) =>
      join.onRef('c.coupon_id', '=', 'i.coupon_id').onRef('c.seq', '=', 'i.rank'),
    )
    .select(['i.rank', 'i.user_id', 'i.date_issued', 'i.date_used', 'i.order_id', 'c.code'])
    .where('i.coupon_id', '=', couponId)
    .orderBy('i.rank')
}

type Raw = Awaited<ReturnType<ReturnType<typeof query>['execute']>>[number]

function winnerRow(r: Raw): WinnerRow {
  return {
    rank: Number(r.rank),
    userId: r.user_id,
    issuedAt: toDate(r.date_issued),
    usedAt: r.date_used === null ? null : toDate(r.date_used),
    orderId: r.order_id,
    code: r.code,
  }
}

/** The coupon's wins by rank, in batches of up to CURSOR_CHUNK. */
export async function* streamWinners(db: Db, couponId: number): AsyncGenerator<WinnerRow[]> {
  if (dialectOf(db) === 'sqlite') {
    for (let last = 0; ; ) {
      const page = await query(db, couponId)
        .where('i.rank', '>', last)
        .limit(CURSOR_CHUNK)
        .execute()
      if (page.length === 0) return
      const rows = page.map(winnerRow)
      last = (rows[rows.length - 1] as WinnerRow).rank
      yield rows
      if (page.length < CURSOR_CHUNK) return
    }
  }
  let batch: WinnerRow[] = []
  for await (const r of query(db, couponId).stream(CURSOR_CHUNK)) {
    batch.push(winnerRow(r))
    if (batch.length >= CURSOR_CHUNK) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0) yield batch
}
