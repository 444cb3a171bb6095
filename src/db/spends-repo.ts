/**
 * Spending a user's coupon on an order and giving it back, and the user's coupon
 * box: plain functions over a Kysely instance or a transaction.
 *
 * Spending is one conditional UPDATE: it changes the row only while the coupon is
 * unused, so of many orders racing for one coupon exactly one changes it, on every
 * dialect (PostgreSQL and MySQL re-check the condition once the row lock is
 * theirs; SQLite writes one at a time). The caller reads the row back to learn
 * which order holds it: its own (a retry, or the winner) or another.
 */
import type { Db } from './database.js'
import { toDate } from './schema.js'

/** Marks the coupon used by the order if it is unused. true: this call did it. */
export async function markUsed(
  db: Db,
  couponId: number,
  userId: string,
  orderId: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('coupon_issues')
    .set({ order_id: orderId, date_used: now, date_updated: now })
    .where('coupon_id', '=', couponId)
    .where('user_id', '=', userId)
    // date_used too: a row used before order ids existed (imported from the
    // original's schema) has no order, and is used all the same.
    .where('order_id', 'is', null)
    .where('date_used', 'is', null)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/** Gives the coupon back if this order holds it. true: this call did it. */
export async function unmarkUsed(
  db: Db,
  couponId: number,
  userId: string,
  orderId: string,
  now: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('coupon_issues')
    .set({ order_id: null, date_used: null, date_updated: now })
    .where('coupon_id', '=', couponId)
    .where('user_id', '=', userId)
    .where('order_id', '=', orderId)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

export interface BoxRow {
  couponId: number
  title: string
  discountAmount: number
  minAvailableAmount: number
  rank: number
  issuedAt: Date
  usedAt: Date | null
  orderId: string | null
  /** its partner code, code number rank (null: none) */
  code: string | null
}

/**
 * Every persisted coupon of the user, with its coupon's terms and its partner
 * code (index on user_id; each code one primary-key probe).
 */
export async function listUserIssues(db: Db, userId: string): Promise<BoxRow[]> {
  const rows = await db
    .selectFrom('coupon_issues as i')
    .innerJoin('coupons as c', 'c.id', 'i.coupon_id')
    .leftJoin('coupon_codes as k', (join) =>
      join.onRef('k.coupon_id', '=', 'i.coupon_id').onRef('k.seq', '=', 'i.rank'),
    )
    .select([
      'i.coupon_id',
      'c.title',
      'c.discount_amount',
      'c.min_available_amount',
      'i.rank',
      'i.date_issued',
      'i.date_used',
      'i.order_id',
      'k.code',
    ])
    .where('i.user_id', '=', userId)
    .execute()
  return rows.map((r) => ({
    couponId: Number(r.coupon_id),
    title: r.title,
    discountAmount: Number(r.discount_amount),
    minAvailableAmount: Number(r.min_available_amount),
    rank: Number(r.rank),
    issuedAt: toDate(r.date_issued),
    usedAt: r.date_used === null ? null : toDate(r.date_used),
    orderId: r.order_id,
    code: r.code,
  }))
}

/**
 * Coupons that may hold a win not yet persisted: started, and with fewer rows
 * than their quantity (a coupon whose every coupon is a row has none queued);
 * the newest `limit` of them.
 */
export async function couponsWithRoomForQueued(db: Db, now: Date, limit: number) {
  const rows = await db
    .selectFrom('coupons')
    .select(['id', 'title', 'discount_amount', 'min_available_amount'])
    .where('date_issue_start', '<=', now)
    .where((eb) =>
      eb.or([
        eb('total_quantity', 'is', null),
        eb('issued_quantity', '<', eb.ref('total_quantity')),
      ]),
    )
    .orderBy('id', 'desc')
    .limit(limit)
    .execute()
  return rows.map((r) => ({
    couponId: Number(r.id),
    title: r.title,
    discountAmount: Number(r.discount_amount),
    minAvailableAmount: Number(r.min_available_amount),
  }))
}

/**
 * How many of each coupon's rows are spent, for the coupons given (the
 * dashboard's figures): one grouped query over their rows.
 */
export async function countSpent(
  db: Db,
  couponIds: readonly number[],
): Promise<Map<number, number>> {
  if (couponIds.length === 0) return new Map()
  const rows = await db
    .selectFrom('coupon_issues')
    .select(['coupon_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('coupon_id', 'in', couponIds)
    .where('date_used', 'is not', null)
    .groupBy('coupon_id')
    .execute()
  return new Map(rows.map((r) => [Number(r.coupon_id), Number(r.n)]))
}
