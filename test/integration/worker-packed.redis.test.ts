/**
 * The stream worker's packed path on every dialect: first deliveries are inserted
 * without ON CONFLICT (PostgreSQL), so a win already in the database must send
 * the batch down the idempotent path, not fail it; and two workers acknowledging
 * out of order (the stream is trimmed, not deleted entry by entry) must still
 * leave the stream empty and every win persisted once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { loadConfig } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { databaseGateSource } from '../../src/db/gate-source.js'
import { countIssues, duplicatePairs, insertWins } from '../../src/db/issues-repo.js'
import { RedisStockGate } from '../../src/gate/redis-stock-gate.js'
import { RedisStreamWorker } from '../../src/queue/redis-stream-worker.js'
import { connectRedis, createRedis, type RedisClient } from '../../src/redis/connection.js'
import { RedisKeys } from '../../src/redis/keys.js'
import {
  createTestDatabase,
  DIALECTS,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { deleteKeys, REDIS_URL, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'

for (const dialect of DIALECTS) {
  describe(`stream worker, packed wins (${dialect})`, {
    skip: (await skipUnless('redis')) || (await skipUnlessDialect(dialect)),
  }, () => {
    const prefix = uniquePrefix()
    const keys = new RedisKeys(prefix)
    let t: TestDatabase
    let client: RedisClient
    let gate: RedisStockGate

    before(async () => {
      const config = loadConfig({ REDIS_URL, REDIS_KEY_PREFIX: prefix })
      if (!config.redis) throw new Error('no redis')
      client = createRedis(config.redis, 'worker-packed-test')
      await connectRedis(client)
      t = await createTestDatabase(dialect)
      gate = new RedisStockGate({ client, keys, source: databaseGateSource(t.database.db) })
    })
    after(async () => {
      await deleteKeys(client, prefix)
      await gate?.close()
      await t?.drop()
    })

    async function queuedCoupon(wins: number) {
      const now = Date.now()
      const window = { issueStart: now - 1000, issueEnd: now + 3_600_000 }
      const coupon = await insertCoupon(
        t.database.db,
        {
          title: 'packed',
          totalQuantity: null,
          discountAmount: 0,
          minAvailableAmount: 0,
          issueStart: new Date(window.issueStart),
          issueEnd: new Date(window.issueEnd),
        },
        new Date(),
      )
      await gate.configure({ couponId: coupon.id, totalQuantity: null, ...window })
      const ranks = new Map<string, number>()
      for (let i = 0; i < wins; i++) {
        const outcome = await gate.tryIssue(coupon.id, `u${i}`, now)
        assert.ok(outcome.won)
        if (outcome.won) ranks.set(`u${i}`, outcome.win.rank)
      }
      return { couponId: coupon.id, ranks, now }
    }

    const worker = (batchSize: number, txRows: number) =>
      new RedisStreamWorker({
        client,
        keys,
        db: t.database.db,
        logger: pino({ level: 'silent' }),
        batchSize,
        txRows,
        claimIdleMs: 60_000,
        maxAttempts: 3,
      })

    async function assertDrained(couponId: number, wins: number) {
      const k = keys.coupon(couponId)
      assert.equal(await countIssues(t.database.db, couponId), wins)
      assert.equal(await duplicatePairs(t.database.db, couponId), 0)
      assert.equal(await client.xlen(k.stream), 0, 'stream empty')
      const pending = (await client.xpending(k.stream, 'persist')) as [number]
      assert.equal(Number(pending[0]), 0, 'nothing pending')
      assert.equal(await client.xlen(k.dead), 0, 'nothing dead-lettered')
    }

    it('a first delivery already in the database is skipped, not an error', async () => {
      const { couponId, ranks, now } = await queuedCoupon(1500)
      // As if a previous worker had committed these rows and then lost its stream
      // state: they come again as new entries.
      const already = ['u3', 'u700', 'u1499'].map((userId) => ({
        couponId,
        userId,
        rank: ranks.get(userId) as number,
        issuedAt: now,
      }))
      await insertWins(t.database.db, already, new Date())
      assert.equal(await worker(1000, 10_000).drainOnce(), 1500)
      assert.equal(await countIssues(t.database.db, couponId), 1500)
      await assertDrained(couponId, 1500)
    })

    it('two workers acknowledging out of order leave the stream empty', async () => {
      const { couponId } = await queuedCoupon(2500)
      const a = worker(100, 300)
      const b = worker(70, 200)
      let handled = 0
      while (handled < 2500) {
        const [x, y] = await Promise.all([a.drainOnce(), b.drainOnce()])
        handled += x + y
        if (x + y === 0) break
      }
      assert.equal(handled, 2500)
      await assertDrained(couponId, 2500)
    })
  })
}
