/**
 * Redis mode under a storm, on each server database: 5,000 simultaneous issue
 * requests over real sockets from 2,500 users (each twice) for 300 coupons.
 * Exactly 300 wins with ranks 1..300, every other answer a 409, and once the
 * stream worker has drained, exactly those 300 as rows.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Pool } from 'undici'
import type { Dialect } from '../../src/config.js'
import { openDatabase } from '../../src/db/database.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import {
  assertWinsPersisted,
  checkRows,
  httpPool,
  oneTo,
  sortedRanks,
  storm,
  tally,
  twiceShuffled,
  users,
  waitDrained,
  winsOf,
} from '../helpers/storm.js'

const SERVER_DIALECTS: Dialect[] = ['postgres', 'mysql']
const TOTAL = 300
const USERS = 2500

for (const dialect of SERVER_DIALECTS) {
  const skip = (await skipUnless('redis')) || (await skipUnlessDialect(dialect))
  describe(`Redis mode on ${dialect}: 5,000 simultaneous requests`, { skip }, () => {
    const prefix = uniquePrefix()
    let databaseUrl = ''
    let t: TestApp | undefined
    let pool: Pool | undefined
    let worker: { stop(): Promise<void> } | undefined

    before(async () => {
      databaseUrl = await createDatabaseUrl(dialect)
      t = await startApp({ env: { REDIS_URL, REDIS_KEY_PREFIX: prefix }, databaseUrl })
      assert.ok(t.container.startWorker, 'Redis mode has a worker')
      worker = await t.container.startWorker()
      pool = httpPool(await t.listen(), 300)
    })

    after(async () => {
      await pool?.close()
      await worker?.stop()
      await t?.close()
      const redis = redisClient()
      await deleteKeys(redis, prefix)
      redis.disconnect()
      if (databaseUrl) await dropDatabaseUrl(databaseUrl)
    })

    it(`${TOTAL} wins with ranks 1..${TOTAL}, then exactly ${TOTAL} rows`, async () => {
      assert.ok(t && pool)
      const couponId = await createCoupon(t.app, { totalQuantity: TOTAL })
      const everyone = users('user-', 0, USERS)
      const replies = await storm(pool, couponId, twiceShuffled(everyone))

      const counts = tally(replies)
      assert.equal(replies.length, 2 * USERS)
      assert.deepEqual(
        Object.keys(counts).sort(),
        ['201', '409 ALREADY_ISSUED', '409 SOLD_OUT'].filter((k) => counts[k]),
        `unexpected answers: ${JSON.stringify(counts)}`,
      )
      const wins = winsOf(replies)
      assert.equal(wins.size, TOTAL)
      assert.deepEqual(sortedRanks(wins.values()), oneTo(TOTAL))

      const stats = await waitDrained(pool, couponId)
      assert.equal(stats.won, TOTAL)
      assert.equal(stats.persisted, TOTAL)
      assert.equal(stats.remaining, 0)

      const check = openDatabase(databaseUrl, dialect, { poolSize: 1 })
      try {
        const view = await checkRows(check.db, couponId)
        assert.equal(view.rows, TOTAL)
        assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(TOTAL))
        assertWinsPersisted(wins, view)
      } finally {
        await check.close()
      }

      const [winner, rank] = [...wins][0] as [string, number]
      const res = await pool.request({
        method: 'GET',
        path: `/v1/coupons/${couponId}/issues/${winner}`,
      })
      const status = (await res.body.json()) as { state: string; rank: number }
      assert.equal(res.statusCode, 200)
      assert.equal(status.state, 'ISSUED')
      assert.equal(status.rank, rank)
    })
  })
}
