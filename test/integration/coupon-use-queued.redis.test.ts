/**
 * Spending a win still QUEUED (Redis mode: answered, not yet persisted): the
 * worker held back, the spend made, then the worker let go. One row per win,
 * the spent one used; issued_quantity, the stats and the stream exact; the
 * worker's later insert of the spent win counts nothing and is acknowledged,
 * not dead-lettered. PostgreSQL takes the worker's packed path (whose insert of
 * new wins fails on the spent row and falls back), MySQL the row-by-row one.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createCoupon, requestIssue } from '../helpers/app.js'
import { countIssues } from '../helpers/issue-counts.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { checkRows, getStats, waitDrained, waitFor } from '../helpers/storm.js'
import {
  cancelUse,
  couponBox,
  issuedQuantity,
  issueRow,
  issueStatus,
  useCoupon,
} from '../helpers/use.js'

const USERS = ['q1', 'q2', 'q3', 'q4', 'q5']

for (const dialect of ['postgres', 'mysql'] as const) {
  describe(`spending a QUEUED win, Redis mode on ${dialect}`, {
    skip: await skipUnlessRedisSuite({ dialect }),
  }, () => {
    const suite = redisSuite({ dialect })

    it('persists the win with the spend; the worker later adds only the others, also after Redis lost the coupon', {
      timeout: 120_000,
    }, async (t) => {
      const s = await suite.start({ worker: false }, t)
      const id = await createCoupon(s.app, { totalQuantity: 10 })
      const ranks = new Map<string, number>()
      for (const u of USERS) {
        const res = await requestIssue(s.app, id, u)
        assert.equal(res.statusCode, 201)
        ranks.set(u, res.json().rank)
      }
      assert.equal(await countIssues(suite.db, id), 0, 'no worker: nothing persisted yet')
      assert.equal((await issueStatus(s.app, id, 'q2')).json().state, 'QUEUED')
      const queuedItem = (await couponBox(s.app, 'q2')).json().items
      assert.deepEqual(
        queuedItem.map((i: Record<string, unknown>) => [i.couponId, i.state, i.rank, i.orderId]),
        [[id, 'QUEUED', ranks.get('q2'), null]],
      )

      // A cancel of a QUEUED win has nothing to undo and writes nothing.
      const cancel = await cancelUse(s.app, id, 'q3', 'o-none')
      assert.equal(cancel.statusCode, 200)
      assert.equal(cancel.json().state, 'QUEUED')
      assert.equal(await countIssues(suite.db, id), 0)

      const spend = await useCoupon(s.app, id, 'q2', { orderId: 'o-q2', orderAmount: 200_000 })
      assert.equal(spend.statusCode, 200, spend.body)
      const row = await issueRow(suite.db, id, 'q2')
      assert.equal(row?.order_id, 'o-q2')
      assert.equal(Number(row?.rank), ranks.get('q2'), "the gate's rank")
      assert.equal(await issuedQuantity(suite.db, id), 1)
      assert.deepEqual(await getStats(s.pool, id), {
        couponId: id,
        totalQuantity: 10,
        codes: 0,
        limit: 10,
        won: 5,
        persisted: 1,
        queued: 4,
        remaining: 5,
      })
      const retry = await useCoupon(s.app, id, 'q2', { orderId: 'o-q2', orderAmount: 200_000 })
      assert.deepEqual(retry.json(), spend.json())
      const other = await useCoupon(s.app, id, 'q2', { orderId: 'o-x', orderAmount: 200_000 })
      assert.equal(other.json().code, 'ALREADY_USED')
      assert.equal((await issueStatus(s.app, id, 'q2')).json().state, 'USED')
      assert.equal((await couponBox(s.app, 'q2')).json().items[0].state, 'USED')

      // Redis loses the coupon's gate state (the stream survives): the spend has the
      // gate rebuilt (rows + stream) before it takes the row lock, and goes on.
      const k = suite.keys.coupon(id)
      await suite.redis.del(k.meta, k.users, k.holes)
      const lost = await useCoupon(s.app, id, 'q4', { orderId: 'o-q4', orderAmount: 200_000 })
      assert.equal(lost.statusCode, 200, lost.body)
      assert.equal(Number((await issueRow(suite.db, id, 'q4'))?.rank), ranks.get('q4'))
      assert.equal(await issuedQuantity(suite.db, id), 2)

      // The worker let go: it persists the other three; the spent wins' entries are no-ops.
      await s.startWorker()
      const stats = await waitDrained(s.pool, id)
      assert.deepEqual(stats, {
        couponId: id,
        totalQuantity: 10,
        codes: 0,
        limit: 10,
        won: 5,
        persisted: 5,
        queued: 0,
        remaining: 5,
      })
      const view = await checkRows(suite.db, id)
      assert.equal(view.rows, 5)
      assert.deepEqual(view.ranks, ranks)
      assert.equal((await issueRow(suite.db, id, 'q2'))?.order_id, 'o-q2', 'still used')
      assert.equal((await issueRow(suite.db, id, 'q4'))?.order_id, 'o-q4', 'still used')
      await waitFor('the stream emptied', async () => (await suite.redis.xlen(k.stream)) === 0)
      assert.equal(await suite.pending(id), 0)
      assert.equal(await suite.redis.xlen(k.dead), 0, 'nothing dead-lettered')
      assert.equal(await issuedQuantity(suite.db, id), 5)
    })
  })
}
