/**
 * Looks at the system of record directly, when the bench knows the database:
 * duplicate rows, the ranks handed out, and whether every user answered 201 has
 * a row. The service's own stats cannot show a duplicate; only the table can.
 */
import { sql } from 'kysely'
import type { Dialect } from './service.js'
import { openDatabase } from './service-backends.js'

export interface DbFacts {
  rows: number
  /** user ids with more than one row for the coupon (up to 10) */
  duplicates: string[]
  distinctRanks: number
  minRank: number | null
  maxRank: number | null
  /** users answered 201 that were looked up, how many have no row, and some of them */
  winnersChecked: number
  winnersMissing: number
  missingSample: string[]
}

const CHUNK = 500

export async function readDbFacts(
  url: string,
  dialect: Dialect,
  couponId: number,
  winners: readonly number[],
): Promise<DbFacts> {
  const database = openDatabase(url, dialect, { poolSize: 2 })
  const { db } = database
  try {
    const duplicates = await db
      .selectFrom('coupon_issues')
      .select('user_id')
      .where('coupon_id', '=', couponId)
      .groupBy('user_id')
      .having(sql`count(*)`, '>', 1)
      .limit(10)
      .execute()
    const ranks = await db
      .selectFrom('coupon_issues')
      .select([
        sql<number>`count(*)`.as('rows'),
        sql<number>`count(distinct ${sql.ref('rank')})`.as('distinct_ranks'),
        sql<number | null>`min(${sql.ref('rank')})`.as('min_rank'),
        sql<number | null>`max(${sql.ref('rank')})`.as('max_rank'),
      ])
      .where('coupon_id', '=', couponId)
      .executeTakeFirstOrThrow()
    const missing: string[] = []
    for (let i = 0; i < winners.length; i += CHUNK) {
      const ids = winners.slice(i, i + CHUNK).map(String)
      const found = await db
        .selectFrom('coupon_issues')
        .select('user_id')
        .where('coupon_id', '=', couponId)
        .where('user_id', 'in', ids)
        .execute()
      const have = new Set(found.map((r) => r.user_id))
      for (const id of ids) if (!have.has(id)) missing.push(id)
    }
    const num = (v: unknown) => (v === null || v === undefined ? null : Number(v))
    return {
      rows: Number(ranks.rows),
      duplicates: duplicates.map((r) => r.user_id),
      distinctRanks: Number(ranks.distinct_ranks),
      minRank: num(ranks.min_rank),
      maxRank: num(ranks.max_rank),
      winnersChecked: winners.length,
      winnersMissing: missing.length,
      missingSample: missing.slice(0, 10),
    }
  } finally {
    await database.close()
  }
}

/** The coupon's rows, user → rank (the draw scenario checks each rank's winner). */
export async function readRanks(
  url: string,
  dialect: Dialect,
  couponId: number,
): Promise<Map<string, number>> {
  const database = openDatabase(url, dialect, { poolSize: 1 })
  try {
    const rows = await database.db
      .selectFrom('coupon_issues')
      .select(['user_id', 'rank'])
      .where('coupon_id', '=', couponId)
      .execute()
    return new Map(rows.map((r) => [r.user_id, Number(r.rank)]))
  } finally {
    await database.close()
  }
}
