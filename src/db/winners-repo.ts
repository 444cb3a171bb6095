/**
 * A coupon's persisted wins by rank, each with its partner code (code number
 * rank), in batches read only when the one before has been taken, so a million
 * rows are never in memory at once:
 *
 * - PostgreSQL through a database cursor (pg-cursor), MySQL through one
 *   streaming query whose rows mysql2 hands over as arrays, gathered a batch at a
 *   time in its callbacks (not Kysely's stream, a promise and an object a row:
 *   its garbage made the young collections frequent, each promoting the rows in
 *   flight into the old generation); each on a
 *   connection of the export's own pool;
 * - SQLite a page at a time by rank (`rank > last … limit`), each page one short
 *   read off the (coupon_id, rank) index. A statement held open for the whole
 *   download would hold a read transaction as long as the client takes, and the
 *   write-ahead log could not be checkpointed past it meanwhile; a page is read
 *   in one synchronous call, not a row per promise, and as arrays of values
 *   (readArrays): node:sqlite's row objects would each outlive V8's young
 *   generation, and a million of them fill the old one.
 */
import type * as Mysql2 from 'mysql2'
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

/** Rows per batch (a cursor read on PostgreSQL, a page on SQLite, a batch on MySQL). */
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

/** What `streamWinners` may read past Kysely: the connection or pool under `db`. */
export interface RawReaders {
  sqlite?: NodeSqliteDatabase
  mysql?: Mysql2.Pool
}

/** The coupon's wins by rank, in batches of up to CURSOR_CHUNK. */
export async function* streamWinners(
  db: Db,
  couponId: number,
  { sqlite, mysql }: RawReaders = {},
): AsyncGenerator<WinnerRow[]> {
  if (mysql) {
    const { sql, parameters } = query(db, couponId).compile()
    for await (const rows of mysqlBatches(mysql, sql, parameters)) yield rows.map(winnerRowOf)
    return
  }
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

/**
 * MySQL: one streaming query, its rows (as arrays) gathered into batches of
 * CURSOR_CHUNK as mysql2 parses them, in its own callbacks: no promise, no
 * object stream per row. The connection is paused while a batch waits to be
 * taken, and resumed when the next one is asked for. Left early (the client went
 * away), the connection is closed, not given back: the protocol has no way to
 * stop a result but to read it to its end, and for a million rows that is tens
 * of MB read and dropped for nothing. The server stops at its next write (its
 * log notes an aborted connection); the pool opens another when one is asked for.
 */
async function* mysqlBatches(
  pool: Mysql2.Pool,
  sqlText: string,
  values: readonly unknown[],
): AsyncGenerator<RawArray[]> {
  const connection = await new Promise<Mysql2.PoolConnection>((resolve, reject) =>
    pool.getConnection((err, c) => (err ? reject(err) : resolve(c))),
  )
  const query = connection.query({ sql: sqlText, values: [...values], rowsAsArray: true })
  let batch: RawArray[] = []
  let ready: RawArray[] | null = null
  let ended = false
  let failure: Error | null = null
  let wake: (() => void) | null = null
  const notify = () => {
    const w = wake
    wake = null
    w?.()
  }
  const onRow = (row: RawArray) => {
    batch.push(row)
    if (batch.length < CURSOR_CHUNK) return
    ready = batch
    batch = []
    connection.pause()
    notify()
  }
  query.on('result', onRow as (row: unknown) => void)
  query.once('error', (err) => {
    failure = err
    notify()
  })
  const end = new Promise<void>((resolve) => query.once('end', resolve))
  void end.then(() => {
    ended = true
    notify()
  })
  try {
    for (;;) {
      if (failure) throw failure
      if (ready) {
        const rows: RawArray[] = ready
        ready = null
        yield rows
        continue
      }
      if (ended) {
        if (batch.length > 0) yield batch
        return
      }
      const more = new Promise<void>((resolve) => {
        wake = resolve
      })
      connection.resume()
      await more
    }
  } finally {
    query.removeListener('result', onRow as (row: unknown) => void)
    if (ended || failure) connection.release()
    else connection.destroy()
  }
}
