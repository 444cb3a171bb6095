/**
 * What every fault test ends with, read from the database itself: no row beyond
 * the quantity, no rank twice, no user twice, issued_quantity equal to the rows,
 * every answered win a row with the rank it was told, no win outside the window.
 */
import assert from 'node:assert/strict'
import { dialectOf } from '../../src/config.js'
import { openDatabase } from '../../src/db/database.js'
import { toDate } from '../../src/db/schema.js'
import { assertWinsPersisted, checkRows, type IssueRowsView } from './storm.js'

/** `answered`: userId → the rank its 201 said. */
export async function assertInvariants(
  databaseUrl: string,
  couponId: number,
  answered: ReadonlyMap<string, number>,
): Promise<IssueRowsView> {
  const database = openDatabase(databaseUrl, dialectOf(databaseUrl), { poolSize: 1 })
  try {
    const { db } = database
    const view = await checkRows(db, couponId)
    const coupon = await db
      .selectFrom('coupons')
      .select(['total_quantity', 'date_issue_start', 'date_issue_end'])
      .where('id', '=', couponId)
      .executeTakeFirstOrThrow()
    if (coupon.total_quantity !== null)
      assert.ok(view.rows <= Number(coupon.total_quantity), `oversold: ${view.rows} rows`)
    assertWinsPersisted(new Map(answered), view)
    const start = toDate(coupon.date_issue_start).getTime()
    const end = toDate(coupon.date_issue_end).getTime()
    const rows = await db
      .selectFrom('coupon_issues')
      .select(['user_id', 'date_issued'])
      .where('coupon_id', '=', couponId)
      .execute()
    for (const r of rows) {
      const at = toDate(r.date_issued).getTime()
      assert.ok(at >= start && at < end, `${r.user_id} won at ${at}, outside [${start}, ${end})`)
    }
    return view
  } finally {
    await database.close()
  }
}
