/**
 * The database goes away in the middle of a storm (a TCP proxy of the test's own
 * between the service and the database is cut: listener closed, connections
 * reset) and comes back. Redis mode keeps deciding and queueing wins meanwhile
 * (201 while Redis is up); the worker keeps its batch and retries; once the
 * database is back every win is persisted exactly once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import type { Dialect } from '../../src/config.js'
import { type Database, openDatabase } from '../../src/db/database.js'
import { PERSIST_GROUP, RedisKeys } from '../../src/redis/keys.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { SERVICES, skipUnless } from '../helpers/services.js'
import {
  assertWinsPersisted,
  checkRows,
  continuousStorm,
  httpPool,
  oneTo,
  sortedRanks,
  tally,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

const SERVER_DIALECTS: Dialect[] = ['postgres', 'mysql']
/** Longer than the coupon cache's TTL, so the outage outlives every cached coupon. */
const OUTAGE_MS = 3000

for (const dialect of SERVER_DIALECTS) {
  const skip = (await skipUnless('redis')) || (await skipUnlessDialect(dialect))
  describe(`${dialect} unreachable during a storm (Redis mode)`, { skip }, () => {
    const prefix = uniquePrefix()
    const service = dialect === 'postgres' ? SERVICES.postgres : SERVICES.mysql
    const proxy = new TcpProxy(service.host, service.port)
    let databaseUrl = ''
    let t: TestApp | undefined
    let worker: { stop(): Promise<void> } | undefined
    let check: Database | undefined
    let redis: Redis | undefined

    before(async () => {
      databaseUrl = await createDatabaseUrl(dialect)
      check = openDatabase(databaseUrl, dialect, { poolSize: 2 })
      redis = redisClient()
      const throughProxy = new URL(databaseUrl)
      throughProxy.port = String(await proxy.start())
      t = await startApp({
        env: { REDIS_URL, REDIS_KEY_PREFIX: prefix, WORKER_BATCH_SIZE: '200' },
        databaseUrl: throughProxy.toString(),
      })
      assert.ok(t.container.startWorker)
      worker = await t.container.startWorker()
      await t.listen()
    })

    after(async () => {
      await proxy.restore()
      await worker?.stop()
      await t?.close()
      await proxy.close()
      if (redis) {
        await deleteKeys(redis, prefix)
        redis.disconnect()
      }
      await check?.close()
      if (databaseUrl) await dropDatabaseUrl(databaseUrl)
    })

    it('keeps accepting wins while the database is down, and persists them all after', async (tc) => {
      assert.ok(t && check && redis)
      const pool = httpPool(t.url, 64)
      tc.after(() => pool.close())
      const couponId = await createCoupon(t.app, { totalQuantity: 1_000_000 })
      let next = 0
      const s = continuousStorm(pool, couponId, () => `d${next++}`, 32)

      await waitFor('500 wins before the cut', async () => winsOf(s.replies).size >= 500)
      await proxy.cut()
      const cutAt = s.replies.length
      await sleep(OUTAGE_MS)
      const duringOutage = s.replies.slice(cutAt)
      // The worker holds its batch for a retry; it must not be re-delivered on every
      // failed pass (past WORKER_MAX_ATTEMPTS deliveries a reclaim dead-letters it).
      const k = new RedisKeys(prefix).coupon(couponId)
      const held = (await redis.xpending(k.stream, PERSIST_GROUP, '-', '+', 10_000)) as [
        string,
        string,
        number,
        number,
      ][]
      const deliveries = Math.max(0, ...held.map(([, , , n]) => Number(n)))
      assert.ok(deliveries <= 2, `a held entry was delivered ${deliveries} times`)
      await proxy.restore()
      await sleep(500)
      const replies = await s.stop()
      tc.diagnostic(`during the outage: ${JSON.stringify(tally(duringOutage))}`)
      tc.diagnostic(`whole storm: ${JSON.stringify(tally(replies))}`)

      assert.ok(duringOutage.length > 100, 'the storm went on during the outage')
      for (const r of replies) assert.equal(r.status, 201, `${r.userId}: ${r.status} ${r.code}`)

      const wins = winsOf(replies)
      await waitDrained(pool, couponId, 30_000)
      const view = await checkRows(check.db, couponId)
      assert.equal(view.rows, wins.size)
      assertWinsPersisted(wins, view)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(view.rows))
      assert.equal(await redis.hlen(k.users), view.rows)
      assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')
    })

    it('a cut while the worker is inside a transaction does not bring the process down', async () => {
      assert.ok(t && check && redis)
      const couponId = await createCoupon(t.app, { totalQuantity: null })
      const k = new RedisKeys(prefix).coupon(couponId)
      const wins = new Map<string, number>()
      for (let i = 0; i < 20; i++) {
        const o = await t.container.issues.issue(couponId, `x${i}`)
        assert.ok(o.won)
        wins.set(o.win.userId, o.win.rank)
      }
      // An uncommitted row for the first winner, straight on the database: the
      // worker's insert waits on it, holding its connection mid-transaction.
      const blocker = await check.db.startTransaction().execute()
      try {
        const at = new Date()
        await blocker
          .insertInto('coupon_issues')
          .values({
            coupon_id: couponId,
            user_id: 'x0',
            rank: wins.get('x0') ?? 0,
            date_issued: at,
            date_created: at,
            date_updated: at,
          })
          .execute()
        await waitFor('the worker to read the batch', async () => {
          const summary = (await redis?.xpending(k.stream, PERSIST_GROUP)) as [number]
          return Number(summary[0]) === 20
        })
        await sleep(300) // now waiting on the row
        await proxy.cut()
        await sleep(300)
      } finally {
        await blocker.rollback().execute()
        await proxy.restore()
      }
      const pool = httpPool(t.url, 4)
      try {
        await waitDrained(pool, couponId)
      } finally {
        await pool.close()
      }
      const view = await checkRows(check.db, couponId)
      assert.equal(view.rows, 20)
      assertWinsPersisted(wins, view)
    })
  })
}
