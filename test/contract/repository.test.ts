/**
 * The repository suite, run against every dialect selected by
 * FIRSTCOME_TEST_DIALECTS (default: sqlite, postgres, mysql).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  findCoupon,
  insertCoupon,
  listCoupons,
  lockCoupons,
  updateCoupon,
} from '../../src/db/coupons-repo.js'
import type { Db } from '../../src/db/database.js'
import { findIssue, insertWins, listWins, persistWins } from '../../src/db/issues-repo.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import type { CouponDraft, Win } from '../../src/domain/coupon.js'
import {
  createTestDatabase,
  DIALECTS,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { countIssues, duplicatePairs, recountIssued } from '../helpers/issue-counts.js'

const draft = (over: Partial<CouponDraft> = {}): CouponDraft => ({
  title: '네고왕',
  totalQuantity: 500,
  discountAmount: 100_000,
  minAvailableAmount: 110_000,
  issueStart: new Date('2026-11-24T04:00:00.123Z'),
  issueEnd: new Date('2026-11-25T04:00:00.456Z'),
  ...over,
})

const win = (
  couponId: number,
  userId: string,
  rank: number,
  issuedAt = 1_795_500_000_123,
): Win => ({
  couponId,
  userId,
  rank,
  issuedAt,
})

for (const dialect of DIALECTS) {
  describe(`repositories on ${dialect}`, { skip: await skipUnlessDialect(dialect) }, () => {
    let t: TestDatabase
    let db: Db

    before(async () => {
      t = await createTestDatabase(dialect)
      db = t.database.db
    })
    after(async () => t?.drop())

    it('runs migrations again without error (idempotent start)', async () => {
      await migrateToLatest(db, dialect)
      await migrateToLatest(db, dialect)
    })

    it('round-trips a coupon with exact UTC instants and a null quantity', async () => {
      const now = new Date('2026-11-24T03:00:00.789Z')
      const created = await insertCoupon(db, draft({ totalQuantity: null }), now)
      assert.ok(created.id > 0)
      const found = await findCoupon(db, created.id)
      assert.deepEqual(found, created)
      assert.equal(found?.totalQuantity, null)
      assert.equal(found?.issuedQuantity, 0)
      assert.equal(found?.issueStart.toISOString(), '2026-11-24T04:00:00.123Z')
      assert.equal(found?.issueEnd.toISOString(), '2026-11-25T04:00:00.456Z')
      assert.equal(found?.createdAt.toISOString(), now.toISOString())
      assert.equal(found?.type, 'FIRST_COME_FIRST_SERVED')
    })

    it('keeps Korean titles and 255-character titles intact', async () => {
      const title = '가'.repeat(255)
      const c = await insertCoupon(db, draft({ title }), new Date())
      assert.equal((await findCoupon(db, c.id))?.title, title)
    })

    it('finds nothing for an unknown id and lists in id order', async () => {
      assert.equal(await findCoupon(db, 999_999_999), null)
      const ids = (await listCoupons(db)).map((c) => c.id)
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      )
    })

    it('updates a coupon and its updated instant', async () => {
      const c = await insertCoupon(db, draft(), new Date('2026-01-01T00:00:00Z'))
      const later = new Date('2026-01-02T00:00:00Z')
      await updateCoupon(db, c.id, draft({ title: 'changed', totalQuantity: 7 }), later)
      const found = await findCoupon(db, c.id)
      assert.equal(found?.title, 'changed')
      assert.equal(found?.totalQuantity, 7)
      assert.equal(found?.updatedAt.toISOString(), later.toISOString())
      assert.equal(found?.createdAt.toISOString(), '2026-01-01T00:00:00.000Z')
    })

    it('inserts wins idempotently: a repeated pair is a no-op, not an error', async () => {
      const c = await insertCoupon(db, draft(), new Date())
      assert.equal(await insertWins(db, [win(c.id, 'u1', 1), win(c.id, 'u2', 2)], new Date()), 2)
      assert.equal(await insertWins(db, [win(c.id, 'u1', 1), win(c.id, 'u3', 3)], new Date()), 1)
      assert.equal(await insertWins(db, [win(c.id, 'u1', 1)], new Date()), 0)
      assert.equal(await countIssues(db, c.id), 3)
      assert.equal(await duplicatePairs(db, c.id), 0)
    })

    it('treats user ids case-sensitively, as the gates do', async () => {
      const c = await insertCoupon(db, draft(), new Date())
      const n = await insertWins(
        db,
        [win(c.id, 'abc', 1), win(c.id, 'ABC', 2), win(c.id, 'Abc', 3)],
        new Date(),
      )
      assert.equal(n, 3)
      assert.equal((await findIssue(db, c.id, 'ABC'))?.rank, 2)
    })

    it('persists wins of several coupons and advances issued_quantity by new rows only', async () => {
      const a = await insertCoupon(db, draft(), new Date())
      const b = await insertCoupon(db, draft(), new Date())
      const batch = [win(a.id, 'x', 1), win(b.id, 'x', 1), win(a.id, 'y', 2)]
      await db.transaction().execute((trx) => persistWins(trx, batch, new Date()))
      await db.transaction().execute((trx) => persistWins(trx, batch, new Date()))
      assert.equal((await findCoupon(db, a.id))?.issuedQuantity, 2)
      assert.equal((await findCoupon(db, b.id))?.issuedQuantity, 1)
    })

    it('rejects a win for a coupon that does not exist (foreign key)', async () => {
      await assert.rejects(insertWins(db, [win(987_654_321, 'ghost', 1)], new Date()))
    })

    it('reads a win back with its instants, and lists wins by rank', async () => {
      const c = await insertCoupon(db, draft(), new Date())
      await insertWins(
        db,
        [win(c.id, 'late', 2, 1_795_500_000_999), win(c.id, 'early', 1, 1_795_500_000_001)],
        new Date(),
      )
      const row = await findIssue(db, c.id, 'late')
      assert.deepEqual(row, {
        couponId: c.id,
        userId: 'late',
        rank: 2,
        issuedAt: new Date(1_795_500_000_999),
        usedAt: null,
        orderId: null,
      })
      assert.equal(await findIssue(db, c.id, 'nobody'), null)
      const wins = await listWins(db, c.id)
      assert.deepEqual(
        wins.map((w) => [w.userId, w.rank, w.issuedAt]),
        [
          ['early', 1, 1_795_500_000_001],
          ['late', 2, 1_795_500_000_999],
        ],
      )
    })

    it('locks coupons inside a transaction and recounts issued_quantity exactly', async () => {
      const c = await insertCoupon(db, draft(), new Date())
      await insertWins(db, [win(c.id, 'a', 1), win(c.id, 'b', 2)], new Date())
      const n = await db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [c.id])
        return recountIssued(trx, c.id)
      })
      assert.equal(n, 2)
      assert.equal((await findCoupon(db, c.id))?.issuedQuantity, 2)
    })

    it('writes a 1,000-win batch in one statement', async () => {
      const c = await insertCoupon(db, draft({ totalQuantity: 1000 }), new Date())
      const batch = Array.from({ length: 1000 }, (_, i) => win(c.id, `user-${i}`, i + 1))
      const n = await db.transaction().execute((trx) => persistWins(trx, batch, new Date()))
      assert.equal(n, 1000)
      assert.equal(await countIssues(db, c.id), 1000)
      assert.equal((await findCoupon(db, c.id))?.issuedQuantity, 1000)
    })
  })
}
