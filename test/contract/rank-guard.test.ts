/**
 * Migration 003 on every dialect: the database on its own refuses a rank given
 * twice and a rank outside 1..total_quantity, whoever writes it. The worker's
 * insert skips a win whose rank is another user's (as it skips a pair already
 * there), refusedWins tells which, and persistWins (the group commit) fails
 * rather than skip an answered win. A database that already holds a rank twice
 * stops the migration, naming it.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Migrator, sql } from 'kysely'
import type { Dialect } from '../../src/config.js'
import { openDatabase } from '../../src/db/database.js'
import { isRankRefusal, isRowError, RankRefusedError } from '../../src/db/errors.js'
import { insertWins, persistWins, refusedWins } from '../../src/db/issues-repo.js'
import { migrations } from '../../src/db/migrate.js'
import { markUsed } from '../../src/db/spends-repo.js'
import type { Win } from '../../src/domain/coupon.js'
import {
  createDatabaseUrl,
  createTestDatabase,
  DIALECTS,
  dropDatabaseUrl,
  insertRulesCoupon,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { within } from '../helpers/wait.js'

const RULES = { issueStart: Date.now() - 60_000, issueEnd: Date.now() + 3_600_000 }
const win = (couponId: number, userId: string, rank: number): Win => ({
  couponId,
  userId,
  rank,
  issuedAt: Date.now(),
})

/** A row written past the service's code, as any writer (a script, a bug) could. */
async function rawInsert(t: TestDatabase, couponId: number, userId: string, rank: number) {
  const now = new Date()
  const at = t.dialect === 'sqlite' ? now.toISOString() : now
  await t.database.db
    .insertInto('coupon_issues')
    .values({
      coupon_id: couponId,
      user_id: userId,
      rank,
      date_issued: at as Date,
      date_created: at as Date,
      date_updated: at as Date,
    })
    .execute()
}

for (const dialect of DIALECTS) {
  describe(`the database refuses a rank twice or past the quantity on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let t: TestDatabase
    before(async () => {
      t = await createTestDatabase(dialect)
    })
    after(async () => {
      await t?.drop()
    })

    it('refuses a rank another user holds, from any writer', async () => {
      const couponId = await insertRulesCoupon(t.database.db, { ...RULES, totalQuantity: 3 })
      assert.equal(await insertWins(t.database.db, [win(couponId, 'u1', 1)], new Date()), 1)
      await assert.rejects(rawInsert(t, couponId, 'u2', 1), (err) => isRowError(err))
      // The worker's insert skips it, and refusedWins names it; a pair already
      // there is skipped too, but is no refusal.
      const again = [win(couponId, 'u1', 1), win(couponId, 'u3', 1), win(couponId, 'u4', 2)]
      assert.equal(await insertWins(t.database.db, again, new Date()), 1)
      const refused = await refusedWins(t.database.db, couponId, again)
      assert.deepEqual(
        refused.map((w) => w.userId),
        ['u3'],
      )
      // The group commit answers each win only once it is a row: it fails instead.
      await assert.rejects(
        t.database.db
          .transaction()
          .execute((trx) =>
            persistWins(trx, [win(couponId, 'u5', 2), win(couponId, 'u6', 3)], new Date()),
          ),
        (err) => err instanceof RankRefusedError && isRowError(err) && isRankRefusal(err),
      )
      const ranks = await t.database.db
        .selectFrom('coupon_issues')
        .select(['user_id', 'rank'])
        .where('coupon_id', '=', couponId)
        .orderBy('rank')
        .execute()
      assert.deepEqual(
        ranks.map((r) => [r.user_id, Number(r.rank)]),
        [
          ['u1', 1],
          ['u4', 2],
        ],
      )
    })

    it('refuses a rank past the quantity or below 1; none without a quantity', async () => {
      const couponId = await insertRulesCoupon(t.database.db, { ...RULES, totalQuantity: 2 })
      for (const rank of [3, 0, -1]) {
        await assert.rejects(
          insertWins(t.database.db, [win(couponId, `r${rank}`, rank)], new Date()),
          (err) => isRankRefusal(err) && isRowError(err),
          `rank ${rank}`,
        )
      }
      // One bad row fails the statement: a batch is then written row by row.
      await assert.rejects(
        insertWins(t.database.db, [win(couponId, 'a', 1), win(couponId, 'b', 3)], new Date()),
        (err) => isRankRefusal(err),
      )
      assert.equal(await insertWins(t.database.db, [win(couponId, 'a', 2)], new Date()), 1)
      await assert.rejects(
        t.database.db
          .updateTable('coupon_issues')
          .set({ rank: 5 })
          .where('coupon_id', '=', couponId)
          .execute(),
        (err) => isRankRefusal(err),
      )
      const unlimited = await insertRulesCoupon(t.database.db, { ...RULES, totalQuantity: null })
      assert.equal(
        await insertWins(t.database.db, [win(unlimited, 'far', 1_000_000)], new Date()),
        1,
      )
    })
    it('a spend does not wait for the coupon the worker holds (no deadlock)', {
      skip: dialect === 'sqlite' && 'SQLite has one writer at a time: nothing to interleave',
    }, async () => {
      const couponId = await insertRulesCoupon(t.database.db, { ...RULES, totalQuantity: 5 })
      await insertWins(t.database.db, [win(couponId, 'spender', 1)], new Date())
      // The worker's transaction holds the coupon's row (as lockCoupons does) ...
      await t.database.db.transaction().execute(async (worker) => {
        await sql`select id from coupons where id = ${couponId} for update`.execute(worker)
        // ... while a spend marks its row used: the guard must not read the coupon
        // for an update that leaves the rank alone, or the two deadlock once the
        // worker's insert meets the spend's row.
        const spent = await within(
          markUsed(t.database.db, couponId, 'spender', 'order-1', new Date()).then(() => 'spent'),
          3000,
          'waited for the coupon',
        )
        assert.equal(spent, 'spent')
      })
    })
  })

  describe(`migration 003 on a database holding a rank twice on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    it('stops and names the coupon and rank; once resolved it applies', async () => {
      const url = await createDatabaseUrl(dialect)
      const database = openDatabase(url, dialect as Dialect, { poolSize: 2 })
      try {
        const all = migrations(dialect)
        const before003 = Object.fromEntries(
          Object.entries(all).filter(([name]) => name !== '003-rank-guard'),
        )
        const previous = new Migrator({
          db: database.db,
          provider: { getMigrations: async () => before003 },
        })
        assert.equal((await previous.migrateToLatest()).error, undefined)
        const db = database.db
        const couponId = await insertRulesCoupon(db, { ...RULES, totalQuantity: 5 })
        await insertWins(db, [win(couponId, 'x', 2), win(couponId, 'y', 2)], new Date())
        const latest = new Migrator({
          db,
          provider: { getMigrations: async () => all },
          allowUnorderedMigrations: true,
        })
        const failed = await latest.migrateToLatest()
        assert.match(String(failed.error), new RegExp(`coupon ${couponId} has rank 2 2 times`))
        await sql`delete from coupon_issues where user_id = 'y'`.execute(db)
        const done = await latest.migrateToLatest()
        assert.equal(done.error, undefined)
        assert.deepEqual(
          done.results?.map((r) => r.migrationName),
          ['003-rank-guard'],
        )
      } finally {
        await database.close()
        await dropDatabaseUrl(url)
      }
    })
  })
}
