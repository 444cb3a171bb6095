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
 *   in one synchronous call, not a row per promise, and as arrays of values
 *   (readArrays): node:sqlite's row objects would each outlive V8's young
 *   generation, and a million of them fill the old one.
 */
import type { Db } from './database.js'
import type { NodeSqliteDatabase } from './node-sqlite.js'
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

/** A row of `query` as an array, in its select list's order. */
type RawArray = [
  Raw['rank'],
  Raw['user_id'],
  Raw['date_issued'],
  Raw['date_used'],
  Raw['order_id'],
  Raw['code'],
]

function winnerRowOf(r: RawArray): WinnerRow {
  return {
    rank: Number(r[0]),
    userId: r[1],
    issuedAt: toDate(r[2]),
    usedAt: r[3] === null ? null : toDate(r[3]),
    orderId: r[4],
    code: r[5],
  }
}

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

/**
 * The coupon's wins by rank, in batches of up to CURSOR_CHUNK. `sqlite`: the
 * connection under `db` when it is SQLite's.
 */
export async function* streamWinners(
  db: Db,
  couponId: number,
  sqlite?: NodeSqliteDatabase,
): AsyncGenerator<WinnerRow[]> {
  if (sqlite) {
    for (let last = 0; ; ) {
      const { sql, parameters } = query(db, couponId)
        .where('i.rank', '>', last)
        .limit(CURSOR_CHUNK)
        .compile()
      const page = sqlite.readArrays(sql, parameters) as RawArray[]
      if (page.length === 0) return
      const rows = page.map(winnerRowOf)
      last = (rows[rows.length - 1] as WinnerRow).rank
      yield rows
      if (page.length < CURSOR_CHUNK) return
      // a turn for the event loop between pages when the client reads fast
      await Promise.resolve()
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
