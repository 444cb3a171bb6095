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
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { type Database, openDatabase } from '../../src/db/database.js'
import { PERSIST_GROUP, RedisKeys } from '../../src/redis/keys.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { deleteKeys, redisClient, uniquePrefix } from '../helpers/redis.js'
import { SERVICES, skipUnless } from '../helpers/services.js'
import { assertWinsPersisted, checkRows, users, waitFor } from '../helpers/storm.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

const skip = (await skipUnless('redis')) || (await skipUnlessDialect('postgres'))

describe('a worker whose ack is lost with the Redis connection', { skip }, () => {
  const prefix = uniquePrefix()
  const keys = new RedisKeys(prefix)
  const proxy = new TcpProxy(SERVICES.redis.host, SERVICES.redis.port)
  const redis = redisClient()
  let databaseUrl = ''
  let t: TestApp | undefined
  let worker: { stop(): Promise<void> } | undefined
  let check: Database | undefined

  before(async () => {
    databaseUrl = await createDatabaseUrl('postgres')
    check = openDatabase(databaseUrl, 'postgres', { poolSize: 2 })
    const port = await proxy.start()
    t = await startApp({
      env: {
        REDIS_URL: `redis://127.0.0.1:${port}/0`,
        REDIS_KEY_PREFIX: prefix,
        WORKER_CLAIM_IDLE_MS: '60000',
      },
      databaseUrl,
    })
  })

  after(async () => {
    await proxy.restore()
    await worker?.stop()
    await t?.close()
    await proxy.close()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    await check?.close()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('persists that batch again once Redis is back, not after WORKER_CLAIM_IDLE_MS', async () => {
    assert.ok(t?.container.startWorker && check)
    const db = check.db
    const couponId = await createCoupon(t.app, { totalQuantity: null })
    const stream = keys.coupon(couponId).stream
    const wins = new Map<string, number>()
    for (const userId of users('r', 0, 50)) {
      const o = await t.container.issues.issue(couponId, userId)
      assert.ok(o.won)
      wins.set(userId, o.win.rank)
    }

    // An uncommitted row for the first winner: the worker's insert waits on it.
    const blocker = new pg.Client({ connectionString: databaseUrl })
    await blocker.connect()
    try {
      await blocker.query('begin')
      await blocker.query(
        `insert into coupon_issues (coupon_id, user_id, rank, date_issued, date_created, date_updated)
         values ($1, 'r0', $2, now(), now(), now())`,
        [couponId, wins.get('r0')],
      )
      worker = await t.container.startWorker()
      await waitFor('the worker to wait on the conflicting row', async () => {
        const { rows } = await blocker.query(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock'`,
        )
        return rows[0].n > 0
      })
      await proxy.cut()
      await blocker.query('rollback') // the worker commits; its ack cannot reach Redis
    } finally {
      await blocker.end()
    }
    await waitFor(
      'the batch in the database',
      async () => (await checkRows(db, couponId)).rows === 50,
    )
    await sleep(1000) // long enough for the client to give the ack up
    const pendingWhileDown = Number(((await redis.xpending(stream, PERSIST_GROUP)) as [number])[0])
    assert.equal(pendingWhileDown, 50, 'the ack was lost')

    await proxy.restore()
    const restoredAt = Date.now()
    await waitFor(
      'the stream to be acknowledged',
      async () =>
        Number(((await redis.xpending(stream, PERSIST_GROUP)) as [number])[0]) === 0 &&
        (await redis.xlen(stream)) === 0,
      10_000,
    )
    const view = await checkRows(db, couponId) // issued_quantity = rows: counted once
    assert.equal(view.rows, 50)
    assertWinsPersisted(wins, view)
    assert.ok(Date.now() - restoredAt < 10_000)
  })
})
