/**
 * Redis mode (PostgreSQL), an API process (`serve --no-worker`) and a
 * `firstcome worker` process: the database turns read-only, then its disk fills
 * up (a tablespace on a small tmpfs holding coupon_issues). Meanwhile wins are
 * answered 201 and wait in the stream, checkout answers 503 with Retry-After, the
 * worker's /readyz names the database (it stayed 200 while every write failed),
 * and no win is dead-lettered, however often it is delivered. Once the database
 * takes writes again every win is a row and the invariants hold.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { ADMIN_TOKEN, admin, createCoupon } from '../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { resetReadOnly, setReadOnly } from '../helpers/db-faults.js'
import { type PgFullDisk, pgTableOnSmallDisk, skipUnlessMount } from '../helpers/disk-faults.js'
import { assertInvariants } from '../helpers/invariants.js'
import {
  type ServerProcess,
  startServer,
  startWorkerProcess,
  stopAll,
  type WorkerProcess,
} from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { httpPool, storm, tally, users, waitDrained, waitFor, winsOf } from '../helpers/storm.js'

const MAX_ATTEMPTS = 2

describe('the stream worker while PostgreSQL is read-only, then full', {
  skip: (await skipUnlessRedisSuite({ dialect: 'postgres' })) || (await skipUnlessMount()),
}, () => {
  const prefix = uniquePrefix()
  const redis = redisClient()
  const processes: (ServerProcess | WorkerProcess)[] = []
  let db: TestDatabase
  let api: ServerProcess
  let worker: WorkerProcess
  let disk: PgFullDisk | undefined
  before(async () => {
    db = await createTestDatabase('postgres')
    const env = {
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      WORKER_CLAIM_IDLE_MS: '1000',
      WORKER_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      WORKER_BATCH_SIZE: '100',
    }
    api = await startServer({ databaseUrl: db.url, adminToken: ADMIN_TOKEN, env, noWorker: true })
    processes.push(api)
    worker = await startWorkerProcess({ ...env, DATABASE_URL: db.url, LOG_LEVEL: 'warn' })
    processes.push(worker)
  })
  after(async () => {
    await stopAll(processes)
    await deleteKeys(redis, prefix)
    redis.disconnect()
    await db?.drop()
    await disk?.release()
  })

  const workerReady = async () => (await fetch(`${worker.metricsUrl}/readyz`)).status
  const checkout = async (couponId: number, userId: string) => {
    const res = await fetch(`${api.url}/v1/coupons/${couponId}/issues/${userId}/use`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: `order-${userId}`, orderAmount: 1_000_000 }),
    })
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      body: await res.text(),
    }
  }
  /** The worker's failed passes so far, from its /metrics. */
  const failedPasses = async () => {
    const text = await (await fetch(`${worker.metricsUrl}/metrics`)).text()
    return Number(/^firstcome_worker_passes_total\{result="error"\} (\d+)/m.exec(text)?.[1] ?? 0)
  }

  /**
   * A fault from `begin()` until `end()`: wins go on being answered 201, the
   * worker holds them, is not ready, and dead-letters none; then they all persist.
   * A checkout meanwhile is refused 503 with Retry-After, never another error;
   * `checkoutsMayPass`: some may also succeed (a full disk still takes an
   * update that fits in a page's free space), so none has to be refused.
   */
  async function throughFault(
    label: string,
    begin: () => Promise<void>,
    end: () => Promise<void>,
    checkoutsMayPass = false,
  ) {
    const couponId = await createCoupon(api, { totalQuantity: 100_000 })
    const pool = httpPool(api.url, 64)
    const k = new RedisKeys(prefix).coupon(couponId)
    try {
      const spenders = users(`${label}-s`, 0, 100)
      const before = winsOf(await storm(pool, couponId, spenders))
      await waitDrained(pool, couponId, 60_000)
      await begin()
      let during: Map<string, number>
      try {
        const replies = await storm(pool, couponId, users(`${label}-d`, 0, 2000))
        assert.deepEqual(tally(replies), { '201': 2000 }, 'wins are answered meanwhile')
        during = winsOf(replies)
        await waitFor(
          `the worker not ready during ${label}`,
          async () => (await workerReady()) === 503,
        )
        const answers = await Promise.all(spenders.slice(0, 20).map((u) => checkout(couponId, u)))
        const refused = answers.filter((a) => a.status !== 200)
        if (!checkoutsMayPass)
          assert.ok(refused.length > 0, `checkout meets the fault: ${JSON.stringify(answers[0])}`)
        for (const a of refused) assert.deepEqual([a.status, a.retryAfter], [503, '1'], a.body)
        // The worker tries them more often than WORKER_MAX_ATTEMPTS, and gives none up.
        const failedBefore = await failedPasses()
        await waitFor(
          'passes failed past WORKER_MAX_ATTEMPTS',
          async () => (await failedPasses()) > failedBefore + MAX_ATTEMPTS,
          30_000,
        )
        assert.equal(await redis.xlen(k.dead), 0, `nothing dead-lettered during ${label}`)
      } finally {
        await end()
      }
      await waitFor(
        `the worker ready after ${label}`,
        async () => (await workerReady()) === 200,
        30_000,
      )
      await waitDrained(pool, couponId, 60_000)
      for (const u of spenders) assert.equal((await checkout(couponId, u)).status, 200, u)
      assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')
      const view = await assertInvariants(db.url, couponId, new Map([...before, ...during]))
      assert.equal(view.rows, before.size + during.size)
    } finally {
      await pool.close()
    }
  }

  it('read-only: wins wait in the stream, none dead-lettered, then all persist', {
    timeout: 180_000,
  }, async () => {
    await throughFault(
      'ro',
      () => setReadOnly(db.url),
      () => resetReadOnly(db.url),
    )
  })

  it('disk full: the same', { timeout: 180_000 }, async () => {
    await throughFault(
      'df',
      async () => {
        disk = await pgTableOnSmallDisk(db.url, 160)
      },
      async () => {
        await disk?.grow()
      },
      true,
    )
  })
})
