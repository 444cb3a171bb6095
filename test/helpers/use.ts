/**
 * Requests of the routes after the win — spend (use), give back (cancel), the
 * coupon box — through `inject()`, and the rows they change.
 */
import type { FastifyInstance } from 'fastify'
import type { Pool } from 'undici'
import type { Db } from '../../src/db/database.js'

export function useCoupon(
  app: FastifyInstance,
  couponId: number,
  userId: string,
  body: unknown,
  headers: Record<string, string> = {},
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
  headers: Record<string, string> = {},
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
  headers: Record<string, string> = {},
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
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ orderId, orderAmount }),
  })
  return { status: res.statusCode, body: await res.body.json() }
}
