// test-order: first — one of the longest files: started first, so that the run does not end waiting for it
/**
 * The database goes away in the middle of a storm (a TCP proxy of the test's own
 * between the service and the database is cut: listener closed, connections
 * reset) and comes back. Redis mode keeps deciding and queueing wins meanwhile
 * (201 while Redis is up); the worker keeps its batch and retries; once the
 * database is back every win is persisted exactly once.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Dialect } from '../../src/config.js'
import { PERSIST_GROUP } from '../../src/coupon-state/keys.js'
import { lockCoupons } from '../../src/db/coupons-repo.js'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { INNODB_TRX_POLL_MS, lockWaits } from '../helpers/db-faults.js'
import { metricValue } from '../helpers/metrics.js'
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
  steadyStorm,
  tally,
  users,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'

const SERVER_DIALECTS: Dialect[] = ['postgres', 'mysql']
/** Longer than the coupon cache's TTL, so the outage outlives every cached coupon. */
const OUTAGE_MS = 3000

for (const dialect of SERVER_DIALECTS) {
  const options: RedisSuiteOptions = { dialect, proxy: 'database' }
  describe(`${dialect} unreachable during a storm (Redis mode)`, {
    skip: await skipUnlessRedisSuite(options),
  }, () => {
    const suite = redisSuite(options)
    let service: Service

    before(async () => {
      service = await suite.start({
        // The worker waits on the test's row for as long as the test holds it.
        env: { WORKER_BATCH_SIZE: '200', DB_LOCK_TIMEOUT_MS: '60000' },
      })
    })

    it('keeps accepting wins while the database is down, and persists them all after', async (tc) => {
      const { app, pool } = service
      const { proxy, redis } = suite
      const couponId = await createCoupon(app, { totalQuantity: 1_000_000 })
      const s = steadyStorm(pool, couponId, 'd', 32)

      await waitFor('500 wins before the cut', async () => winsOf(s.replies).size >= 500)
      await proxy.cut()
      const cutAt = s.replies.length
      const cutAtMs = Date.now()
      await waitFor(
        'the outage to outlive the cache, the storm going on',
        async () => Date.now() - cutAtMs >= OUTAGE_MS && s.replies.length - cutAt > 100,
        OUTAGE_MS + 20_000,
      )
      const duringOutage = s.replies.slice(cutAt)
      // The worker holds its batch for a retry; it must not be re-delivered on every
      // failed pass (past WORKER_MAX_ATTEMPTS deliveries a reclaim dead-letters it).
      const k = suite.keys.coupon(couponId)
      const held = (await redis.xpending(k.stream, PERSIST_GROUP, '-', '+', 10_000)) as [
        string,
        string,
        number,
        number,
      ][]
      const deliveries = Math.max(0, ...held.map(([, , , n]) => Number(n)))
      assert.ok(deliveries <= 2, `a held entry was delivered ${deliveries} times`)
      await proxy.restore()
      const restoredAt = s.replies.length
      await waitFor(
        'the storm to go on after the restore',
        () => s.replies.length > restoredAt + 100,
      )
      const replies = await s.stop()
      tc.diagnostic(`during the outage: ${JSON.stringify(tally(duringOutage))}`)
      tc.diagnostic(`whole storm: ${JSON.stringify(tally(replies))}`)

      assert.ok(duringOutage.length > 100, 'the storm went on during the outage')
      for (const r of replies) assert.equal(r.status, 201, `${r.userId}: ${r.status} ${r.code}`)

      const wins = winsOf(replies)
      const view = await suite.assertSettled(pool, couponId, wins, 30_000)
      assert.equal(view.rows, wins.size)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(view.rows))
      assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')
    })

    it('a cut while the worker is inside a transaction does not bring the process down', async () => {
      const couponId = await createCoupon(service.app, { totalQuantity: null })
      // The coupon's row locked straight on the database before any win: the
      // worker's transaction, which starts by taking that lock, waits on it
      // holding its connection. (A row of a winner inserted after the wins
      // raced the worker, which could have written it first.)
      const blocker = await suite.db.startTransaction().execute()
      let wins = new Map<string, number>()
      try {
        await lockCoupons(blocker, [couponId])
        wins = await winInProcess(service, couponId, users('x', 0, 20))
        await waitFor(
          'the worker to read the batch',
          async () => (await suite.pending(couponId)) === 20,
        )
        await waitFor(
          'the worker to wait on the row',
          async () => (await lockWaits(suite.db, dialect)) > 0,
          undefined,
          INNODB_TRX_POLL_MS,
        )
        const failed = await metricValue(service.container.metrics.persistErrors)
        await suite.proxy.cut()
        await waitFor(
          "the cut to fail the worker's transaction",
          async () => (await metricValue(service.container.metrics.persistErrors)) > failed,
        )
      } finally {
        await blocker.rollback().execute()
        await suite.proxy.restore()
      }
      await waitDrained(service.pool, couponId)
      const view = await checkRows(suite.db, couponId)
      assert.equal(view.rows, 20)
      assertWinsPersisted(wins, view)
    })
  })
}
