/**
 * coupon_codes and coupon_code_pools: plain functions over a Kysely instance or a
 * transaction. Code number `seq` of a coupon goes to its win of rank `seq`.
 */
import { CompiledQuery, sql } from 'kysely'
import { type Db, dialectOf } from './database.js'

/**
 * Takes the coupon's pool lock for the rest of the transaction (creating its pool
 * row on the first upload) and returns how many codes it holds. Uploads of one
 * coupon take turns here; the coupon's own row is not touched.
 */
export async function lockPool(db: Db, couponId: number): Promise<number> {
  const insert = db.insertInto('coupon_code_pools').values({ coupon_id: couponId, codes: 0 })
  if (dialectOf(db) === 'mysql') {
    await insert.onDuplicateKeyUpdate({ codes: sql`codes` }).execute()
  } else {
    await insert.onConflict((oc) => oc.column('coupon_id').doNothing()).execute()
  }
  // A write, so SQLite takes its write lock and the others the row's.
  await db
    .updateTable('coupon_code_pools')
    .set({ codes: sql`codes` })
    .where('coupon_id', '=', couponId)
    .execute()
  return countCodes(db, couponId)
}

export async function setPoolSize(db: Db, couponId: number, codes: number): Promise<void> {
  await db
    .updateTable('coupon_code_pools')
    .set({ codes })
    .where('coupon_id', '=', couponId)
    .execute()
}

/** How many codes the coupon holds (0: none). */
export async function countCodes(db: Db, couponId: number): Promise<number> {
  const row = await db
    .selectFrom('coupon_code_pools')
    .select('codes')
    .where('coupon_id', '=', couponId)
    .executeTakeFirst()
  return row ? Number(row.codes) : 0
}

/** How many codes each of these coupons holds (a coupon without any is absent). */
export async function countCodesOf(
  db: Db,
  couponIds: readonly number[],
): Promise<Map<number, number>> {
  if (couponIds.length === 0) return new Map()
  const rows = await db
    .selectFrom('coupon_code_pools')
    .select(['coupon_id', 'codes'])
    .where('coupon_id', 'in', couponIds)
    .execute()
  return new Map(rows.map((r) => [Number(r.coupon_id), Number(r.codes)]))
}

/** Codes per INSERT statement: one round trip each, on every dialect well within its limits. */
export const CODES_PER_STATEMENT: Record<ReturnType<typeof dialectOf>, number> = {
  postgres: 20_000,
  sqlite: 20_000,
  mysql: 5_000,
}

/**
 * Inserts codes numbered `firstSeq`, `firstSeq + 1`, … A code the coupon already
 * holds (stored, or earlier in the same statement) is skipped, leaving its number
 * unused; returns how many were inserted, so fewer than given means a duplicate.
 * Each dialect gets the codes in as few parameters as it takes: one array
 * (PostgreSQL), one JSON text (SQLite), one value each (MySQL).
 */
export async function insertCodes(
  db: Db,
  couponId: number,
  firstSeq: number,
  codes: readonly string[],
): Promise<number> {
  if (codes.length === 0) return 0
  const dialect = dialectOf(db)
  let query: CompiledQuery
  if (dialect === 'postgres') {
    query = sql`
      insert into coupon_codes (coupon_id, seq, code)
      select ${couponId}, (${firstSeq}::int + x.n - 1)::int, x.code
      from unnest(${codes}::text[]) with ordinality as x(code, n)
      on conflict (coupon_id, code) do nothing`.compile(db)
  } else if (dialect === 'sqlite') {
    // `where true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
    query = sql`
      insert into coupon_codes (coupon_id, seq, code)
      select ${couponId}, ${firstSeq} + key, value from json_each(${JSON.stringify(codes)})
      where true on conflict (coupon_id, code) do nothing`.compile(db)
  } else {
    // The numbers are ours (integers); only the codes travel as parameters.
    let values = ''
    for (let i = 0; i < codes.length; i++) values += `(${couponId}, ${firstSeq + i}, ?),`
    query = CompiledQuery.raw(
      `insert into coupon_codes (coupon_id, seq, code) values ${values.slice(0, -1)} on duplicate key update seq = seq`,
      [...codes], // Kysely freezes a compiled query's parameters: not the caller's array
    )
  }
  const result = await db.executeQuery(query)
  return Number(result.numAffectedRows ?? 0)
}

/** Which of these codes the coupon holds, with their numbers. */
export async function findCodes(
  db: Db,
  couponId: number,
  codes: readonly string[],
): Promise<Map<string, number>> {
  if (codes.length === 0) return new Map()
  const rows = await db
    .selectFrom('coupon_codes')
    .select(['code', 'seq'])
    .where('coupon_id', '=', couponId)
    .where('code', 'in', codes)
    .execute()
  return new Map(rows.map((r) => [r.code, Number(r.seq)]))
}

/** Code number `seq` of the coupon, or null. */
export async function findCode(db: Db, couponId: number, seq: number): Promise<string | null> {
  const row = await db
    .selectFrom('coupon_codes')
    .select('code')
    .where('coupon_id', '=', couponId)
    .where('seq', '=', seq)
    .executeTakeFirst()
  return row?.code ?? null
}

/** Codes number `seqs` of the coupon, by number (numbers without a code are absent). */
export async function codesAt(
  db: Db,
  couponId: number,
  seqs: readonly number[],
): Promise<Map<number, string>> {
  const found = new Map<number, string>()
  for (let i = 0; i < seqs.length; i += 1000) {
    const rows = await db
      .selectFrom('coupon_codes')
      .select(['seq', 'code'])
      .where('coupon_id', '=', couponId)
      .where('seq', 'in', seqs.slice(i, i + 1000))
      .execute()
    for (const r of rows) found.set(Number(r.seq), r.code)
  }
  return found
}

/** Up to `max` of the coupon's codes, from number `fromSeq` on, in number order. */
export async function codesFrom(
  db: Db,
  couponId: number,
  fromSeq: number,
  max: number,
): Promise<string[]> {
  const rows = await db
    .selectFrom('coupon_codes')
    .select('code')
    .where('coupon_id', '=', couponId)
    .where('seq', '>=', fromSeq)
    .orderBy('seq')
    .limit(max)
    .execute()
  return rows.map((r) => r.code)
}
