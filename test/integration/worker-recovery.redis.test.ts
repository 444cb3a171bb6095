/**
 * A stream worker that lives through a Redis failure: the connection drops after
 * it wrote a batch to the database but before its XACK reached Redis. The batch
 * stays pending on this very (live) consumer, so no other worker's XAUTOCLAIM is
 * due for WORKER_CLAIM_IDLE_MS; the worker itself must persist it again as soon
 * as Redis is back (idempotently: the rows and issued_quantity count it once).
 *
 * The window is made deterministic: the test holds an uncommitted row that
 * conflicts with the batch, so the worker waits inside its transaction while the
 * test cuts Redis (a TCP proxy of its own), then lets the transaction finish.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import pg from 'pg'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { metricValue } from '../helpers/metrics.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { assertWinsPersisted, checkRows, users, waitFor } from '../helpers/storm.js'

const SUITE: RedisSuiteOptions = { proxy: 'redis' }

describe('a worker whose ack is lost with the Redis connection', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)
  /** its worker starts in the test */
  let t: Service

  before(async () => {
    t = await suite.start({
      // The worker waits on the test's row for as long as the test holds it.
      env: { WORKER_CLAIM_IDLE_MS: '60000', DB_LOCK_TIMEOUT_MS: '60000' },
      worker: false,
    })
  })

  it('persists that batch again once Redis is back, not after WORKER_CLAIM_IDLE_MS', async () => {
    const db = suite.db
    const couponId = await createCoupon(t.app, { totalQuantity: null })
    const stream = suite.keys.coupon(couponId).stream
    const wins = await winInProcess(t, couponId, users('r', 0, 50))

    // An uncommitted row for the first winner: the worker's insert waits on it.
    const blocker = new pg.Client({ connectionString: suite.databaseUrl })
    await blocker.connect()
    try {
      await blocker.query('begin')
      await blocker.query(
        `insert into coupon_issues (coupon_id, user_id, rank, date_issued, date_created, date_updated)
         values ($1, 'r0', $2, now(), now(), now())`,
        [couponId, wins.get('r0')],
      )
      await t.startWorker()
      await waitFor('the worker to wait on the conflicting row', async () => {
        const { rows } = await blocker.query(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock'`,
        )
        return rows[0].n > 0
      })
      await suite.proxy.cut()
      await blocker.query('rollback') // the worker commits; its ack cannot reach Redis
    } finally {
      await blocker.end()
    }
    await waitFor(
      'the batch in the database',
      async () => (await checkRows(db, couponId)).rows === 50,
    )
    await waitFor(
      'the worker to give the ack up (a failed pass)',
      async () => (await metricValue(t.container.metrics.workerPasses, { result: 'error' })) > 0,
    )
    assert.equal(await suite.pending(couponId), 50, 'the ack was lost')

    await suite.proxy.restore()
    const restoredAt = Date.now()
    await waitFor(
      'the stream to be acknowledged',
      async () => (await suite.pending(couponId)) === 0 && (await suite.redis.xlen(stream)) === 0,
      10_000,
    )
    const view = await checkRows(db, couponId) // issued_quantity = rows: counted once
    assert.equal(view.rows, 50)
    assertWinsPersisted(wins, view)
    assert.ok(Date.now() - restoredAt < 10_000)
  })
})
