/**
 * The id of the request that won a row (`coupon_issues.request_id`, migration
 * 004), on every dialect: migration 004 applies to a database of the previous
 * release and keeps its rows; every insert path writes the id and `listWins`, what
 * a gate is rebuilt from, reads it back exactly.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type Kysely, Migrator } from 'kysely'
import { type Database, openDatabase } from '../../src/db/database.js'
import { insertNewWins, insertWins, listWins, persistWins } from '../../src/db/issues-repo.js'
import { migrateToLatest, migrations } from '../../src/db/migrate.js'
import { requestId } from '../../src/db/migrations/004-request-id.js'
import type { Win } from '../../src/domain/coupon.js'
import { newRequestId } from '../../src/domain/request-id.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  insertFirstReleaseCoupon,
  insertRulesCoupon,
  skipUnlessDialect,
} from '../helpers/databases.js'

const RULES = { totalQuantity: 100, issueStart: 0, issueEnd: Date.parse('2100-01-01') }

for (const dialect of DIALECTS) {
  describe(`request ids beside the rows on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
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

    it('migration 004 applies to a database of the previous release, rows and all', async () => {
      const { db } = database
      const all = migrations(dialect)
      const previous = Object.fromEntries(
        Object.entries(all).filter(([name]) => name < '004'),
      ) as typeof all
      const first = await new Migrator({
        db,
        provider: { getMigrations: async () => previous },
      }).migrateToLatest()
      assert.equal(first.error, undefined)
      const couponId = await insertFirstReleaseCoupon(db, RULES)
      const now = new Date()
      await db
        .insertInto('coupon_issues')
        .values({
          coupon_id: couponId,
          user_id: 'old-user',
          rank: 1,
          date_issued: new Date(1_700_000_000_000),
          date_created: now,
          date_updated: now,
        })
        .execute()

      await migrateToLatest(db, dialect)
      await migrateToLatest(db, dialect)
      await requestId(dialect).up(db as unknown as Kysely<unknown>)

      assert.deepEqual(await listWins(db, couponId), [
        { couponId, userId: 'old-user', rank: 1, issuedAt: 1_700_000_000_000 },
      ])
    })

    it('every insert path writes the id, and listWins reads it back', async () => {
      const { db } = database
      const couponId = await insertRulesCoupon(db, RULES)
      const at = 1_750_000_000_123
      const generated = newRequestId()
      const wins: Win[] = [
        { couponId, userId: 'a', rank: 1, issuedAt: at, requestId: 'Key-A' },
        // Case-sensitive (MySQL: ascii_bin), colons kept, the longest a key may be.
        { couponId, userId: 'b', rank: 2, issuedAt: at, requestId: 'key-a' },
        { couponId, userId: 'c', rank: 3, issuedAt: at, requestId: 'x:y:z' },
        { couponId, userId: 'd', rank: 4, issuedAt: at, requestId: 'k'.repeat(64) },
        { couponId, userId: 'e', rank: 5, issuedAt: at, requestId: generated },
        { couponId, userId: 'f', rank: 6, issuedAt: at },
      ]
      assert.equal(await insertWins(db, wins.slice(0, 3), new Date()), 3)
      assert.equal(await persistWins(db, wins.slice(3), new Date()), 3)
      if (dialect === 'postgres') {
        // The worker's packed path: joined columns, first deliveries.
        const joined = await insertNewWins(
          db,
          {
            couponId,
            users: 'g,h',
            ranks: '7,8',
            issuedAts: `${at},${at}`,
            requestIds: '~p.1,key-h',
          },
          new Date(),
        )
        assert.equal(joined, 2)
        wins.push(
          { couponId, userId: 'g', rank: 7, issuedAt: at, requestId: '~p.1' },
          { couponId, userId: 'h', rank: 8, issuedAt: at, requestId: 'key-h' },
        )
      }
      assert.deepEqual(await listWins(db, couponId), wins)
      // A win persisted again (a redelivery) keeps the id the row has.
      await insertWins(db, [{ ...(wins[0] as Win), requestId: 'another' }], new Date())
      assert.equal((await listWins(db, couponId))[0]?.requestId, 'Key-A')
    })
  })
}
