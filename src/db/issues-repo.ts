/** coupon_issues rows: plain functions over a Kysely instance or a transaction. */
import { CompiledQuery, sql } from 'kysely'
import type { Win } from '../domain/coupon.js'
import { addIssuedQuantity, lockCoupons } from './coupons-repo.js'
import { type Db, dialectOf } from './database.js'
import { RankRefusedError } from './errors.js'
import { toDate } from './schema.js'

export interface IssueRow {
  couponId: number
  userId: string
  rank: number
  issuedAt: Date
  usedAt: Date | null
  /** the order it was spent on; null while unused */
  orderId: string | null
}

/** Rows per INSERT statement: one database round trip each. */
export const ROWS_PER_STATEMENT = 1000

/**
 * Inserts wins of ONE coupon; a row a unique key already holds is skipped, not an
 * error. Returns how many rows were new. Two unique keys can skip a win:
 * (coupon, user), a pair already present (a redelivered batch is normal), and
 * (coupon, rank), the rank held by another user (migration 003: after Redis lost
 * data, a gate that gave the rank again). Which one, `refusedWins` tells: the
 * caller asks it whenever fewer rows were new than wins given.
 *
 * Skipping, not failing, keeps one refused win from costing its whole batch a
 * retry row by row; and it is the only way on MySQL, where `ON DUPLICATE KEY
 * UPDATE id = id` matches every unique key (INSERT IGNORE would also swallow
 * foreign-key errors). Other violations (a foreign key, the rank trigger) still
 * fail the statement.
 */
export async function insertWins(db: Db, wins: readonly Win[], now: Date): Promise<number> {
  let inserted = 0
  for (let i = 0; i < wins.length; i += ROWS_PER_STATEMENT) {
    inserted += await insertChunk(db, wins.slice(i, i + ROWS_PER_STATEMENT), now)
  }
  return inserted
}

/**
 * Wins of one coupon as comma-joined columns (values that hold no comma, in the
 * same order): what the stream worker reads from Redis, passed on unsplit.
 */
export interface JoinedWins {
  couponId: number
  users: string
  ranks: string
  issuedAts: string
  requestIds: string
}

/**
 * Inserts wins expected to be new (first deliveries), given as joined columns, on
 * PostgreSQL (the worker's packed strategy): it splits the columns itself, one
 * statement of three text parameters, no value handled in JS. Returns how many
 * rows were inserted; a pair already present (a QUEUED win a spend persisted
 * first) is skipped, as insertWins skips it. ON CONFLICT costs a share of the
 * insert (docs/benchmarks.md), but without it such a pair failed the statement,
 * PostgreSQL logged an ERROR for it, and the whole batch was done again row by row.
 */
export async function insertNewWins(db: Db, wins: JoinedWins, now: Date): Promise<number> {
  if (dialectOf(db) !== 'postgres')
    throw new Error('insertNewWins: joined columns are for PostgreSQL')
  if (wins.users === '') return 0
  const result = await sql`
    insert into coupon_issues (coupon_id, user_id, rank, date_issued, request_id, date_created, date_updated)
    select ${wins.couponId}, u, r, to_timestamp(t / 1000.0), k, ${now}, ${now}
    from unnest(string_to_array(${wins.users}::text, ','),
                string_to_array(${wins.ranks}::text, ',')::int[],
                string_to_array(${wins.issuedAts}::text, ',')::float8[],
                string_to_array(${wins.requestIds}::text, ',')) as x(u, r, t, k)
    on conflict do nothing`.execute(db)
  return Number(result.numAffectedRows ?? 0)
}

async function insertChunk(db: Db, wins: readonly Win[], now: Date): Promise<number> {
  if (wins.length === 0) return 0
  const dialect = dialectOf(db)
  if (dialect === 'postgres') {
    // Three array parameters instead of thousands of scalars: PostgreSQL parses
    // and binds one small statement, not one as long as the batch. Instants
    // travel as epoch milliseconds (no Date objects to format per row).
    const result = await sql`
      insert into coupon_issues (coupon_id, user_id, rank, date_issued, request_id, date_created, date_updated)
      select ${wins[0]?.couponId}, u, r, to_timestamp(t / 1000.0), k, ${now}, ${now}
      from unnest(${wins.map((w) => w.userId)}::text[], ${wins.map((w) => w.rank)}::int[],
                  ${wins.map((w) => w.issuedAt)}::float8[],
                  ${wins.map((w) => w.requestId ?? null)}::text[]) as x(u, r, t, k)
      on conflict do nothing`.execute(db)
    return Number(result.numAffectedRows ?? 0)
  }
  if (dialect === 'mysql') {
    // Spelled out, not built with Kysely, and with the instants as SQL: formatting
    // three Dates per row in mysql2 was most of the worker's CPU on MySQL. The
    // columns hold UTC; the arithmetic on a DATETIME literal involves no time zone.
    const at = `'${now.toISOString().slice(0, 23).replace('T', ' ')}'`
    const row = `(${Number(wins[0]?.couponId)}, ?, ?, '1970-01-01' + interval ? microsecond, ?, ${at}, ${at}),`
    const values: unknown[] = []
    for (const w of wins) values.push(w.userId, w.rank, w.issuedAt * 1000, w.requestId ?? null)
    const result = await db.executeQuery(
      CompiledQuery.raw(
        `insert into \`coupon_issues\` (\`coupon_id\`, \`user_id\`, \`rank\`, \`date_issued\`, \`request_id\`, \`date_created\`, \`date_updated\`) values ${row.repeat(wins.length).slice(0, -1)} on duplicate key update \`id\` = \`id\``,
        values,
      ),
    )
    return Number(result.numAffectedRows ?? 0)
  }
  const rows = wins.map((w) => ({
    coupon_id: w.couponId,
    user_id: w.userId,
    rank: w.rank,
    date_issued: new Date(w.issuedAt),
    request_id: w.requestId ?? null,
    date_created: now,
    date_updated: now,
  }))
  const result = await db
    .insertInto('coupon_issues')
    .values(rows)
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst()
  return Number(result.numInsertedOrUpdatedRows ?? 0)
}

/**
 * Of these users' wins of ONE coupon, those an insert skipped because their rank
 * is another user's (their user has no row): the database refused them. Ask only
 * when an insert reported fewer new rows than wins (the usual case asks nothing).
 */
export async function refusedWins<W extends Pick<Win, 'userId'>>(
  db: Db,
  couponId: number,
  wins: readonly W[],
): Promise<W[]> {
  const present = new Set<string>()
  for (let i = 0; i < wins.length; i += ROWS_PER_STATEMENT) {
    const users = wins.slice(i, i + ROWS_PER_STATEMENT).map((w) => w.userId)
    const rows = await db
      .selectFrom('coupon_issues')
      .select('user_id')
      .where('coupon_id', '=', couponId)
      .where('user_id', 'in', users)
      .execute()
    for (const r of rows) present.add(r.user_id)
  }
  return wins.filter((w) => !present.has(w.userId))
}

/**
 * Groups wins by coupon, inserts them and advances each coupon's issued_quantity.
 * A win whose rank the database refused fails the whole call (RankRefusedError):
 * every win given here was answered, so none may be skipped quietly. Answers the
 * rows inserted; `counted` hears them per coupon (a win already a row adds none).
 */
export async function persistWins(
  db: Db,
  wins: readonly Win[],
  now: Date,
  counted?: (couponId: number, inserted: number) => void,
): Promise<number> {
  const byCoupon = new Map<number, Win[]>()
  for (const w of wins) {
    const list = byCoupon.get(w.couponId)
    if (list) list.push(w)
    else byCoupon.set(w.couponId, [w])
  }
  // The coupons' row locks first, as every writer of wins takes them (a spend
  // of a QUEUED win: lock, then its row): rows first and the lock last waited
  // in a circle with such a spend of one of these users, a deadlock.
  await lockCoupons(db, [...byCoupon.keys()])
  let inserted = 0
  for (const [couponId, list] of byCoupon) {
    const n = await insertWins(db, list, now)
    if (n < list.length) {
      // Each of these was answered a win: none may be skipped for its rank.
      const refused = await refusedWins(db, couponId, list)
      if (refused.length > 0)
        throw new RankRefusedError(
          couponId,
          refused.map((w) => w.userId),
        )
    }
    await addIssuedQuantity(db, couponId, n)
    counted?.(couponId, n)
    inserted += n
  }
  return inserted
}

export async function findIssue(
  db: Db,
  couponId: number,
  userId: string,
): Promise<IssueRow | null> {
  const row = await db
    .selectFrom('coupon_issues')
    .select(['coupon_id', 'user_id', 'rank', 'date_issued', 'date_used', 'order_id'])
    .where('coupon_id', '=', couponId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
  if (!row) return null
  return {
    couponId: Number(row.coupon_id),
    userId: row.user_id,
    rank: Number(row.rank),
    issuedAt: toDate(row.date_issued),
    usedAt: row.date_used === null ? null : toDate(row.date_used),
    orderId: row.order_id,
  }
}

/**
 * Every persisted win of a coupon, with the id of the request that won it, to
 * rebuild a gate from the system of record.
 */
export async function listWins(db: Db, couponId: number): Promise<Win[]> {
  const rows = await db
    .selectFrom('coupon_issues')
    .select(['user_id', 'rank', 'date_issued', 'request_id'])
    .where('coupon_id', '=', couponId)
    .orderBy('rank')
    .execute()
  return rows.map((r) => {
    const win: Win = {
      couponId,
      userId: r.user_id,
      rank: Number(r.rank),
      issuedAt: toDate(r.date_issued).getTime(),
    }
    if (r.request_id !== null) win.requestId = r.request_id
    return win
  })
}
