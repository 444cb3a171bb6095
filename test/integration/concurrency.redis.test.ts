/**
 * Redis mode under a storm, on each server database: 5,000 simultaneous issue
 * requests over real sockets from 2,500 users (each twice) for 300 coupons.
 * Exactly 300 wins with ranks 1..300, every other answer a 409, and once the
 * stream worker has drained, exactly those 300 as rows.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Dialect } from '../../src/config.js'
import { createCoupon } from '../helpers/app.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import {
  assertWinsPersisted,
  checkRows,
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
  const options: RedisSuiteOptions = { dialect }
  describe(`Redis mode on ${dialect}: 5,000 simultaneous requests`, {
    skip: await skipUnlessRedisSuite(options),
  }, () => {
    const suite = redisSuite(options)
    let service: Service

    before(async () => {
      service = await suite.start({ connections: 300 })
    })

    it(`${TOTAL} wins with ranks 1..${TOTAL}, then exactly ${TOTAL} rows`, async () => {
      const { app, pool } = service
      const couponId = await createCoupon(app, { totalQuantity: TOTAL })
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

      const view = await checkRows(suite.db, couponId)
      assert.equal(view.rows, TOTAL)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(TOTAL))
      assertWinsPersisted(wins, view)

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
