/**
 * Partner codes in tests: uploads through `inject()`, the export, and what the
 * database holds.
 */
import { parse } from 'csv-parse/sync'
import type { FastifyInstance } from 'fastify'
import type { Db } from '../../src/db/database.js'
import { admin } from './app.js'

/** `POST /v1/coupons/{id}/codes` with a JSON body, as the admin unless told otherwise. */
export function uploadCodes(
  app: FastifyInstance,
  couponId: number,
  body: unknown,
  headers: Record<string, string> = admin,
) {
  return app.inject({
    method: 'POST',
    url: `/v1/coupons/${couponId}/codes`,
    headers: { ...headers, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  })
}

/** The same with a CSV body (`contentType` may add `; header=present`). */
export function uploadCsv(
  app: FastifyInstance,
  couponId: number,
  csv: string | Buffer,
  contentType = 'text/csv',
) {
  return app.inject({
    method: 'POST',
    url: `/v1/coupons/${couponId}/codes`,
    headers: { ...admin, 'content-type': contentType },
    payload: csv,
  })
}

export function exportCsv(
  app: FastifyInstance,
  couponId: number,
  headers: Record<string, string> = admin,
) {
  return app.inject({ method: 'GET', url: `/v1/coupons/${couponId}/issues.csv`, headers })
}

/** The coupon's codes in number order, and the pool's count, as stored. */
export async function storedCodes(db: Db, couponId: number) {
  const rows = await db
    .selectFrom('coupon_codes')
    .select(['seq', 'code'])
    .where('coupon_id', '=', couponId)
    .orderBy('seq')
    .execute()
  const pool = await db
    .selectFrom('coupon_code_pools')
    .select('codes')
    .where('coupon_id', '=', couponId)
    .executeTakeFirst()
  return {
    codes: rows.map((r) => r.code),
    seqs: rows.map((r) => Number(r.seq)),
    pool: pool ? Number(pool.codes) : 0,
  }
}

/** The export's CSV as records of strings, read by csv-parse (the header first). */
export function parseCsvLines(text: string): string[][] {
  return parse(text, { record_delimiter: '\r\n', relax_quotes: false }) as string[][]
}
