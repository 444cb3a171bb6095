/**
 * Every writer of a coupon's wins takes the coupon's row lock before its rows,
 * on every dialect; and the draw reads the quantity under a shared lock, so a
 * change checked just before drawAt is committed before the draw reads it. A spend of a QUEUED win does (lock, then its row); the
 * embedded group commit inserted its rows first and locked the coupon last, to
 * add to issued_quantity. With both on one user's row the two waited for each
 * other: the database aborted one (a deadlock), and whichever lost answered 503,
 * a whole batch of wins when it was the group commit. The group commit's insert
 * is held open here by a plugin on the statements Kysely runs; MySQL's bulk
 * insert is a compiled statement no plugin sees, so there it is not held (and
 * its foreign key's shared lock on the coupon ordered the two anyway).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { findCoupon, insertCoupon, lockCoupons, sharedQuantity } from '../../src/db/coupons-repo.js'
import type { Db } from '../../src/db/database.js'
import { insertWins, persistWins } from '../../src/db/issues-repo.js'
import type { Win } from '../../src/domain/coupon.js'
import {
  createTestDatabase,
  DIALECTS,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { slowQueries } from '../helpers/slow-queries.js'

/**
 * Each insert into coupon_issues is answered `ms` late, its locks held
 * meanwhile: built by Kysely or written in SQL (the bulk insert of wins is).
 */
const slowIssueInserts = (ms: number) =>
  slowQueries(ms, (node) =>
    /insert\s+(ignore\s+)?into\s+\W?coupon_issues/i.test(JSON.stringify(node)),
  )

/** A coupon open since a minute ago, for an hour. */
function openCoupon(db: Db, title: string, totalQuantity: number) {
  const now = Date.now()
  return insertCoupon(
    db,
    {
      title,
      totalQuantity,
      discountAmount: 1,
      minAvailableAmount: 0,
      issueStart: new Date(now - 60_000),
      issueEnd: new Date(now + 3_600_000),
    },
    new Date(now),
  )
}

for (const dialect of DIALECTS) {
  describe(`wins persisted beside a spend (${dialect})`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let t: TestDatabase
    let db: Db
    before(async () => {
      t = await createTestDatabase(dialect)
      db = t.database.db
    })
    after(() => t?.drop())

    it("a batch and a spend's write of one user's win take turns, no deadlock", async () => {
      const now = new Date()
      const coupon = await openCoupon(db, 'lock order', 10)
      const win: Win = {
        couponId: coupon.id,
        userId: 'queued-user',
        rank: 1,
        issuedAt: now.getTime(),
        requestId: 'r-1',
      }
      // The group commit: its insert held 600 ms before it adds to issued_quantity.
      const batch = db
        .withPlugin(slowIssueInserts(600))
        .transaction()
        .execute((trx) => persistWins(trx, [win], now))
      await sleep(200)
      // The spend, as persistVerifiedWins writes it: the coupon's lock, then the row.
      const spend = db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [coupon.id])
        return insertWins(trx, [win], now)
      })
      const [b, s] = await Promise.allSettled([batch, spend])
      assert.equal(b.status, 'fulfilled', b.status === 'rejected' ? String(b.reason) : '')
      assert.equal(s.status, 'fulfilled', s.status === 'rejected' ? String(s.reason) : '')
      const rows = await db
        .selectFrom('coupon_issues')
        .select('user_id')
        .where('coupon_id', '=', coupon.id)
        .execute()
      assert.equal(rows.length, 1)
    })

    it("a draw's read of the quantity waits for a change being committed; a plain read does not", async () => {
      const coupon = await openCoupon(db, 'quantity read', 100)
      // A PATCH lowering the quantity: checked, written, committed 400 ms later.
      let committed = false
      const change = db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [coupon.id])
        await trx
          .updateTable('coupons')
          .set({ total_quantity: 10 })
          .where('id', '=', coupon.id)
          .execute()
        await sleep(400)
        committed = true
      })
      await sleep(100)
      if (dialect !== 'sqlite') {
        // What the draw read before: the quantity before the change.
        assert.equal((await findCoupon(db, coupon.id))?.totalQuantity, 100)
      }
      const read = await db.transaction().execute((trx) => sharedQuantity(trx, coupon.id))
      assert.equal(committed, true, 'read once the change committed')
      assert.equal(read, 10)
      await change
    })
  })
}
