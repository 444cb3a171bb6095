/**
 * `kill -9` of a Redis-mode server (PostgreSQL) in the middle of a storm of spends
 * of QUEUED wins (no worker: every spend persists its win itself), then a restart
 * with the worker: every spend answered 200 is used by its order; the worker
 * persists the rest without counting a spent win twice; rows, issued_quantity
 * and the stats are exact, nothing dead-lettered.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import {
  checkRowsAt,
  httpPool,
  soldOutStats,
  storm,
  users,
  waitDrained,
  winsOf,
} from '../helpers/storm.js'
import { spendStorm, usedRows } from '../helpers/use.js'

const WINNERS = 600
const KILL_AFTER_SPENDS = 100

describe('kill -9 during a storm of QUEUED spends (Redis, PostgreSQL)', {
  skip: await skipUnlessRedisSuite({ dialect: 'postgres' }),
}, () => {
  const prefix = uniquePrefix()
  const redis = redisClient()
  const servers: ServerProcess[] = []
  let db: TestDatabase
  before(async () => {
    db = await createTestDatabase('postgres')
  })
  after(async () => {
    await stopAll(servers)
    await deleteKeys(redis, prefix)
    redis.disconnect()
    await db?.drop()
  })
  const start = async (args: string[] = []) => {
    const server = await startServer({
      databaseUrl: db.url,
      adminToken: ADMIN_TOKEN,
      env: { REDIS_URL, REDIS_KEY_PREFIX: prefix },
      args,
    })
    servers.push(server)
    return server
  }

  it('loses no spend answered 200 and counts every win once', { timeout: 180_000 }, async () => {
    const first = await start(['--no-worker'])
    const couponId = await createCoupon(first, { totalQuantity: WINNERS, minAvailableAmount: 0 })
    const p1 = httpPool(first.url, 100)
    const winners = [...winsOf(await storm(p1, couponId, users('r', 0, WINNERS))).keys()]
    assert.equal(winners.length, WINNERS)

    let ok = 0
    const replies = await spendStorm(p1, couponId, winners, () => {
      if (++ok === KILL_AFTER_SPENDS) first.signal('SIGKILL')
    })
    await p1.destroy()
    assert.equal((await first.exited).signal, 'SIGKILL')
    const answered = replies.filter((r) => r.status === 200)
    assert.ok(answered.length >= KILL_AFTER_SPENDS)
    assert.ok(
      replies.some((r) => r.status === null),
      'the kill cut the storm short',
    )
    for (const r of replies) assert.ok(r.status === 200 || r.status === null, `${r.status}`)
    const used = await usedRows(db.url, couponId)
    for (const r of answered) assert.equal(used.get(r.userId), `ord-${r.userId}`, r.userId)
    // Only spends made rows so far, each counted once (checkRows: issued_quantity = rows).
    assert.equal((await checkRowsAt(db.url, couponId)).rows, used.size)

    const second = await start()
    const p2 = httpPool(second.url, 100)
    try {
      assert.deepEqual(await waitDrained(p2, couponId, 60_000), soldOutStats(couponId, WINNERS))
      const view = await checkRowsAt(db.url, couponId)
      assert.equal(view.rows, WINNERS)
      const stillUsed = await usedRows(db.url, couponId)
      for (const r of answered) assert.equal(stillUsed.get(r.userId), `ord-${r.userId}`)
      const k = new RedisKeys(prefix).coupon(couponId)
      assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')

      const again = await spendStorm(p2, couponId, winners, () => {})
      for (const r of again) assert.equal(r.status, 200, r.userId)
      assert.equal((await usedRows(db.url, couponId)).size, WINNERS)
      assert.equal((await checkRowsAt(db.url, couponId)).rows, WINNERS)
    } finally {
      await p2.close()
    }
  })
})
