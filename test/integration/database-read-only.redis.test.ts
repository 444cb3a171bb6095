/**
 * The database turns read-only for longer than WORKER_CLAIM_IDLE_MS in the middle
 * of a storm, with two workers (as a failover to a standby, a full disk or an
 * operator would), and then writable again. Every write fails meanwhile with an
 * error that is the database's, not any row's (SQLSTATE 25006), and the sessions
 * are terminated at both edges. Redis mode keeps answering wins; once the database
 * takes writes again every one is a row, and none is dead-lettered: neither for
 * the error, nor for the deliveries the outage piled up as the workers reclaimed
 * each other's held batches.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { PERSIST_GROUP } from '../../src/coupon-state/keys.js'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { resetReadOnly, setReadOnly } from '../helpers/db-faults.js'
import { redisSuite, type Service, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { steadyStorm, tally, users, waitFor, winsOf } from '../helpers/storm.js'

/** Several times WORKER_CLAIM_IDLE_MS: the workers reclaim each other's entries meanwhile. */
const OUTAGE_MS = 10_000
const TOTAL = 1_000_000
const WORKER_ENV = {
  WORKER_BATCH_SIZE: '200',
  WORKER_CLAIM_IDLE_MS: '2000',
  WORKER_MAX_ATTEMPTS: '2',
}

type Pending = [id: string, consumer: string, idleMs: number, deliveries: number][]

describe('the database read-only for a while during a storm (Redis mode, two workers)', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()
  let a: Service
  let b: Service

  before(async () => {
    a = await suite.start({ env: WORKER_ENV, connections: 32 })
    b = await suite.start({ env: WORKER_ENV, connections: 32 })
  })

  it('answers wins meanwhile, persists every one after, dead-letters none', async (tc) => {
    const couponId = await createCoupon(a.app, { totalQuantity: TOTAL })
    const k = suite.keys.coupon(couponId)
    const storms = [steadyStorm(a.pool, couponId, 'a', 16), steadyStorm(b.pool, couponId, 'b', 16)]
    const wins = () => storms.reduce((n, s) => n + winsOf(s.replies).size, 0)

    await waitFor('500 wins before the fault', async () => wins() >= 500)
    await setReadOnly(suite.databaseUrl)
    const before = wins()
    const readOnlyAt = Date.now()
    // The fault lasts OUTAGE_MS by the clock (the workers' claim-idle bound is one),
    // and until the storm has gone on winning through it.
    await waitFor(
      'the storm to go on winning while the database is read-only',
      async () => Date.now() - readOnlyAt >= OUTAGE_MS && wins() - before > 100,
      OUTAGE_MS + 30_000,
    )
    const during = wins() - before
    const pending = (await suite.redis.xpending(
      k.stream,
      PERSIST_GROUP,
      '-',
      '+',
      100_000,
    )) as Pending
    const deliveries = Math.max(0, ...pending.map(([, , , n]) => Number(n)))
    await resetReadOnly(suite.databaseUrl)
    const writableAt = wins()
    await waitFor('wins after the database is writable again', () => wins() > writableAt + 100)
    const replies = (await Promise.all(storms.map((s) => s.stop()))).flat()
    tc.diagnostic(
      `whole storm: ${JSON.stringify(tally(replies))}; ${during} wins while read-only; ${pending.length} pending, delivered up to ${deliveries} times`,
    )
    assert.ok(during > 100, 'the storm went on winning while the database was read-only')

    const dead = await suite.redis.xrange(k.dead, '-', '+')
    assert.equal(dead.length, 0, `dead-lettered: ${JSON.stringify(dead.slice(0, 3))}`)
    const won = winsOf(replies)
    const view = await suite.assertSettled(a.pool, couponId, won, 60_000)
    assert.equal(view.rows, won.size, 'every 201 is a row, and nothing else is')
    assert.ok(view.rows <= TOTAL, 'no oversell against the database quantity')
    assert.equal(await suite.redis.xlen(k.dead), 0, 'nothing dead-lettered')
    assert.equal(await suite.pending(couponId), 0, 'nothing left pending')
  })

  it('wins delivered past WORKER_MAX_ATTEMPTS while read-only wait for the database, not the dead letters', async () => {
    const couponId = await createCoupon(a.app, { totalQuantity: 1000 })
    const k = suite.keys.coupon(couponId)
    await a.stopWorker()
    await b.stopWorker()
    const won = await winInProcess(a, couponId, users('g', 0, 100))
    // A consumer that read them and went away, after they had been handed round
    // many times (as an outage longer than WORKER_CLAIM_IDLE_MS does).
    const { redis } = suite
    const read = (await redis.xreadgroup(
      'GROUP',
      PERSIST_GROUP,
      'gone',
      'COUNT',
      1000,
      'STREAMS',
      k.stream,
      '>',
    )) as [string, [string, string[]][]][]
    const ids = (read[0]?.[1] ?? []).map(([id]) => id)
    assert.equal(ids.length, 100)
    await redis.xclaim(k.stream, PERSIST_GROUP, 'gone', 0, ...ids, 'RETRYCOUNT', 10, 'JUSTID')
    await setReadOnly(suite.databaseUrl)
    try {
      await a.startWorker()
      await b.startWorker()
      // Several reclaims of the idle entries: each is one more delivery of each.
      await waitFor(
        'two reclaims of every entry',
        async () => {
          const pending = (await redis.xpending(k.stream, PERSIST_GROUP, '-', '+', 1000)) as Pending
          return pending.length === 100 && pending.every(([, , , n]) => Number(n) >= 10 + 2)
        },
        60_000,
      )
      assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered while read-only')
    } finally {
      await resetReadOnly(suite.databaseUrl)
    }
    const view = await suite.assertSettled(a.pool, couponId, won)
    assert.equal(view.rows, 100)
    assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')
  })

  it('an entry for a win that is already a row is acknowledged, not dead-lettered', async () => {
    const couponId = await createCoupon(a.app, { totalQuantity: 1000 })
    const k = suite.keys.coupon(couponId)
    const won = await winInProcess(a, couponId, users('r', 0, 20))
    await suite.assertSettled(a.pool, couponId, won)
    // A stale copy of a persisted win whose rank the gate no longer holds (as
    // an entry left behind by a worker that lost its ack and a rebuilt gate).
    await suite.redis.xadd(k.stream, '*', 'u', 'r0', 'r', '999', 't', String(Date.now()))
    await waitFor(
      'the stale entry to be handled',
      async () => (await suite.pending(couponId)) === 0 && (await suite.redis.xlen(k.stream)) === 0,
    )
    assert.equal(await suite.redis.xlen(k.dead), 0, 'a win already a row is not a dead letter')
    const view = await suite.assertSettled(a.pool, couponId, won)
    assert.equal(view.rows, 20)
  })

  it('after the fault: a fresh storm persists as usual', async () => {
    // The sessions the fault ended are replaced: nothing stays broken.
    const couponId = await createCoupon(b.app, { totalQuantity: 300 })
    const s = steadyStorm(b.pool, couponId, 'c', 16)
    await waitFor('sold out', async () => s.replies.some((r) => r.code === 'SOLD_OUT'))
    const won = winsOf(await s.stop())
    assert.equal(won.size, 300)
    await suite.assertSettled(b.pool, couponId, won)
    assert.equal(await suite.redis.xlen(suite.keys.coupon(couponId).dead), 0)
  })
})
