/**
 * A Redis gate with its own key prefix over a database of its own, coupons whose
 * wins wait in their streams, and stream workers over both: what the worker tests
 * start from.
 */
import assert from 'node:assert/strict'
import pino from 'pino'
import { type Dialect, loadConfig } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { databaseGateSource } from '../../src/db/gate-source.js'
import { RedisStockGate } from '../../src/gate/redis-stock-gate.js'
import { RedisStreamWorker } from '../../src/queue/redis-stream-worker.js'
import { connectRedis, createRedis, type RedisClient } from '../../src/redis/connection.js'
import { RedisKeys } from '../../src/redis/keys.js'
import { createTestDatabase, type TestDatabase } from './databases.js'
import { deleteKeys, REDIS_URL, uniquePrefix } from './redis.js'

export interface QueuedCoupon {
  couponId: number
  /** userId (u0, u1, …) → rank */
  ranks: Map<string, number>
  /** when the wins were granted (epoch ms) */
  now: number
}

export interface WorkerOptions {
  batchSize?: number
  txRows?: number
  loadGate?: (couponId: number) => Promise<unknown>
}

export interface WorkerFixture {
  client: RedisClient
  keys: RedisKeys
  gate: RedisStockGate
  t: TestDatabase
  /** A coupon with `wins` wins granted through the gate, all queued in its stream. */
  queuedCoupon(wins: number, totalQuantity?: number | null): Promise<QueuedCoupon>
  worker(options?: WorkerOptions): RedisStreamWorker
  close(): Promise<void>
}

export async function workerFixture(dialect: Dialect, name: string): Promise<WorkerFixture> {
  const prefix = uniquePrefix()
  const keys = new RedisKeys(prefix)
  const config = loadConfig({ REDIS_URL, REDIS_KEY_PREFIX: prefix })
  if (!config.redis) throw new Error('no redis')
  const client = createRedis(config.redis, name)
  await connectRedis(client)
  const t = await createTestDatabase(dialect)
  const gate = new RedisStockGate({ client, keys, source: databaseGateSource(t.database.db) })
  return {
    client,
    keys,
    gate,
    t,
    async queuedCoupon(wins, totalQuantity = null) {
      const now = Date.now()
      const window = { issueStart: now - 1000, issueEnd: now + 3_600_000 }
      const coupon = await insertCoupon(
        t.database.db,
        {
          title: 'worker',
          totalQuantity,
          discountAmount: 0,
          minAvailableAmount: 0,
          issueStart: new Date(window.issueStart),
          issueEnd: new Date(window.issueEnd),
        },
        new Date(),
      )
      await gate.configure({ couponId: coupon.id, totalQuantity, ...window })
      const outcomes = await Promise.all(
        Array.from({ length: wins }, (_, i) => gate.tryIssue(coupon.id, `u${i}`, now)),
      )
      const ranks = new Map<string, number>()
      for (const o of outcomes) if (o.won) ranks.set(o.win.userId, o.win.rank)
      assert.equal(ranks.size, wins)
      assert.equal(await client.xlen(keys.coupon(coupon.id).stream), wins)
      return { couponId: coupon.id, ranks, now }
    },
    worker({ batchSize = 1000, txRows = 10_000, loadGate } = {}) {
      return new RedisStreamWorker({
        client,
        keys,
        db: t.database.db,
        logger: pino({ level: 'silent' }),
        batchSize,
        txRows,
        claimIdleMs: 60_000,
        maxAttempts: 3,
        loadGate,
      })
    },
    async close() {
      await deleteKeys(client, prefix)
      await gate.close()
      await t.drop()
    },
  }
}
