/** What tests count in the database; the service itself never needs these. */
import type { Db } from '../../src/db/database.js'

export async function countIssues(db: Db, couponId: number): Promise<number> {
  const row = await db
    .selectFrom('coupon_issues')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('coupon_id', '=', couponId)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Duplicate (coupon, user) pairs; always empty while the UNIQUE index stands. */
export async function duplicatePairs(db: Db, couponId: number): Promise<number> {
  const rows = await db
    .selectFrom('coupon_issues')
    .select('user_id')
    .where('coupon_id', '=', couponId)
    .groupBy('user_id')
    .having((eb) => eb.fn.countAll(), '>', 1)
    .execute()
  return rows.length
}

/** Sets issued_quantity to the exact row count; the count. */
export async function recountIssued(db: Db, id: number): Promise<number> {
  const n = await countIssues(db, id)
  await db.updateTable('coupons').set({ issued_quantity: n }).where('id', '=', id).execute()
  return n
}
