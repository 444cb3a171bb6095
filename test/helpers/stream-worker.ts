/**
 * A Redis gate with its own key prefix over a database of its own, coupons whose
 * wins wait in their streams, and stream workers over both: what the worker tests
 * start from.
 */
import assert from 'node:assert/strict'
import pino from 'pino'
import type { Dialect } from '../../src/config.js'
import { persistKindFor } from '../../src/queue/persist/strategy.js'
import { RedisStreamWorker } from '../../src/queue/redis-stream-worker.js'
import { createRedisGate, type RedisGateUnderTest } from './gates.js'
import { REDIS_URL } from './redis.js'

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
  ensureLoaded?: (couponId: number) => Promise<boolean>
}

export interface WorkerFixture extends RedisGateUnderTest {
  /** A coupon with `wins` wins granted through the gate, all queued in its stream. */
  queuedCoupon(wins: number, totalQuantity?: number | null): Promise<QueuedCoupon>
  worker(options?: WorkerOptions): RedisStreamWorker
}

export async function workerFixture(dialect: Dialect, name: string): Promise<WorkerFixture> {
  const g = await createRedisGate({ env: { REDIS_URL }, dialect, name })
  return {
    ...g,
    async queuedCoupon(wins, totalQuantity = null) {
      const now = Date.now()
      const couponId = await g.addCoupon({
        totalQuantity,
        issueStart: now - 1000,
        issueEnd: now + 3_600_000,
      })
      const outcomes = await Promise.all(
        Array.from({ length: wins }, (_, i) => g.gate.tryIssue(couponId, `u${i}`, now)),
      )
      const ranks = new Map<string, number>()
      for (const o of outcomes) if (o.won) ranks.set(o.win.userId, o.win.rank)
      assert.equal(ranks.size, wins)
      assert.equal(await g.client.xlen(g.keys.coupon(couponId).stream), wins)
      return { couponId, ranks, now }
    },
    worker({ batchSize = 1000, txRows = 10_000, ensureLoaded } = {}) {
      return new RedisStreamWorker({
        client: g.client,
        keys: g.keys,
        db: g.db,
        logger: pino({ level: 'silent' }),
        batchSize,
        txRows,
        claimIdleMs: 60_000,
        maxAttempts: 3,
        ensureLoaded,
        persist: persistKindFor(dialect),
      })
    },
  }
}
