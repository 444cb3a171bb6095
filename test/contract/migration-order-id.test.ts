/**
 * Migration 002 (the order id column and the user index) on a database the
 * previous release created: only migration 001 applied, rows in it. Migrated to
 * the latest, the rows are intact and can be spent; run again, nothing changes.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type Kysely, Migrator } from 'kysely'
import { type Database, openDatabase } from '../../src/db/database.js'
import { findIssue } from '../../src/db/issues-repo.js'
import { migrateToLatest, migrations } from '../../src/db/migrate.js'
import { orderId } from '../../src/db/migrations/002-order-id.js'
import { listUserIssues, markUsed } from '../../src/db/spends-repo.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  insertFirstReleaseCoupon,
  skipUnlessDialect,
} from '../helpers/databases.js'

for (const dialect of DIALECTS) {
  describe(`migration 002 on ${dialect}`, { skip: await skipUnlessDialect(dialect) }, () => {
    let url = ''
    let database: Database
    before(async () => {
      url = await createDatabaseUrl(dialect)
      database = openDatabase(url, dialect, { poolSize: 2 })
    })
    after(async () => {
      await database?.close()
      if (url) await dropDatabaseUrl(url)
    })

    it('applies to a database of the previous release and keeps its rows usable', async () => {
      const db = database.db
      const initial = migrations(dialect)['001-initial']
      assert.ok(initial)
      const previous = new Migrator({
        db,
        provider: { getMigrations: async () => ({ '001-initial': initial }) },
      })
      const first = await previous.migrateToLatest()
      assert.equal(first.error, undefined)
      const coupon = {
        id: await insertFirstReleaseCoupon(db, {
          totalQuantity: 10,
          issueStart: Date.parse('2026-11-24T00:00:00Z'),
          issueEnd: Date.parse('2026-11-25T00:00:00Z'),
        }),
      }
      const issuedAt = Date.parse('2026-11-24T01:00:00.123Z')
      // The previous release's columns only (no later migration's).
      const created = new Date()
      await db
        .insertInto('coupon_issues')
        .values(
          ['a', 'b', 'B'].map((u, i) => ({
            coupon_id: coupon.id,
            user_id: u,
            rank: i + 1,
            date_issued: new Date(issuedAt),
            date_created: created,
            date_updated: created,
          })),
        )
        .execute()

      await migrateToLatest(db, dialect)
      await migrateToLatest(db, dialect)
      // A run cut short after its first step is safe to repeat step by step.
      await orderId(dialect).up(db as unknown as Kysely<unknown>)

      const a = await findIssue(db, coupon.id, 'a')
      assert.deepEqual(a, {
        couponId: coupon.id,
        userId: 'a',
        rank: 1,
        issuedAt: new Date(issuedAt),
        usedAt: null,
        orderId: null,
      })
      const now = new Date('2026-11-24T02:00:00.456Z')
      assert.equal(await markUsed(db, coupon.id, 'a', 'Order-1', now), true)
      assert.equal(await markUsed(db, coupon.id, 'a', 'Order-2', now), false)
      assert.equal((await findIssue(db, coupon.id, 'a'))?.orderId, 'Order-1')
      assert.deepEqual((await findIssue(db, coupon.id, 'a'))?.usedAt, now)
      // Order ids, like user ids, are case-sensitive (MySQL: ascii_bin).
      assert.equal(await markUsed(db, coupon.id, 'b', 'order-1', now), true)
      assert.equal((await findIssue(db, coupon.id, 'b'))?.orderId, 'order-1')
      assert.equal((await findIssue(db, coupon.id, 'B'))?.orderId, null)
      const box = await listUserIssues(db, 'B')
      assert.deepEqual(
        box.map((r) => [r.couponId, r.title, r.rank, r.orderId]),
        [[coupon.id, 'old', 3, null]],
      )
    })
  })
}
