/**
 * Requests of the routes after the win — spend (use), give back (cancel), the
 * coupon box — through `inject()`, and the rows they change. They go as the
 * shop's backend (the service token) unless other headers are given.
 */

import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import type { Pool } from 'undici'
import { dialectOf } from '../../src/config.js'
import { type Db, openDatabase } from '../../src/db/database.js'
import { service } from './app.js'

export function useCoupon(
  app: FastifyInstance,
  couponId: number,
  userId: string,
  body: unknown,
  headers: Record<string, string> = service,
) {
  return app.inject({
    method: 'POST',
    url: `/v1/coupons/${couponId}/issues/${encodeURIComponent(userId)}/use`,
    headers,
    payload: body as object,
  })
}

export function cancelUse(
  app: FastifyInstance,
  couponId: number,
  userId: string,
  orderId: string,
  headers: Record<string, string> = service,
) {
  return app.inject({
    method: 'DELETE',
    url: `/v1/coupons/${couponId}/issues/${encodeURIComponent(userId)}/use?orderId=${encodeURIComponent(orderId)}`,
    headers,
  })
}

export function couponBox(
  app: FastifyInstance,
  userId: string,
  headers: Record<string, string> = service,
) {
  return app.inject({
    method: 'GET',
    url: `/v1/users/${encodeURIComponent(userId)}/coupons`,
    headers,
  })
}

export function issueStatus(app: FastifyInstance, couponId: number, userId: string) {
  return app.inject({
    method: 'GET',
    url: `/v1/coupons/${couponId}/issues/${encodeURIComponent(userId)}`,
  })
}

/** A user's row as stored (null: none), for before/after comparisons. */
export async function issueRow(db: Db, couponId: number, userId: string) {
  const row = await db
    .selectFrom('coupon_issues')
    .selectAll()
    .where('coupon_id', '=', couponId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return row ?? null
}

export async function issuedQuantity(db: Db, couponId: number): Promise<number> {
  const row = await db
    .selectFrom('coupons')
    .select('issued_quantity')
    .where('id', '=', couponId)
    .executeTakeFirstOrThrow()
  return Number(row.issued_quantity)
}

export interface SpendReply {
  status: number
  body: unknown
}

/** `POST …/use` over a real socket (a Pool), for storms of concurrent spends. */
export async function spendOver(
  pool: Pool,
  couponId: number,
  userId: string,
  orderId: string,
  orderAmount = 200_000,
): Promise<SpendReply> {
  const res = await pool.request({
    method: 'POST',
    path: `/v1/coupons/${couponId}/issues/${encodeURIComponent(userId)}/use`,
    headers: { ...service, 'content-type': 'application/json' },
    body: JSON.stringify({ orderId, orderAmount }),
  })
  return { status: res.statusCode, body: await res.body.json() }
}

export interface Spent {
  userId: string
  /** null: no answer (the server was killed) */
  status: number | null
}

/** Every user spends on `ord-<userId>` at once; onOk is called per 200 as it comes. */
export function spendStorm(pool: Pool, couponId: number, userIds: string[], onOk: () => void) {
  return Promise.all(
    userIds.map(async (userId): Promise<Spent> => {
      try {
        const r = await spendOver(pool, couponId, userId, `ord-${userId}`)
        if (r.status === 200) onOk()
        return { userId, status: r.status }
      } catch {
        return { userId, status: null }
      }
    }),
  )
}

/** userId → order id of every used row of the coupon */
export async function usedRows(
  databaseUrl: string,
  couponId: number,
): Promise<Map<string, string>> {
  const database = openDatabase(databaseUrl, dialectOf(databaseUrl), { poolSize: 1 })
  try {
    const rows = await database.db
      .selectFrom('coupon_issues')
      .select(['user_id', 'order_id', 'date_used'])
      .where('coupon_id', '=', couponId)
      .where('order_id', 'is not', null)
      .execute()
    for (const r of rows) assert.ok(r.date_used, `${r.user_id} used with a date`)
    return new Map(rows.map((r) => [r.user_id, r.order_id ?? '']))
  } finally {
    await database.close()
  }
}
