/**
 * The stream worker with a backlog: several reads gathered into one transaction,
 * every entry acknowledged and out of the stream (in slices small enough for Lua's unpack);
 * and a worker that finds the gate state lost before any request rebuilt it.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { loadConfig } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { databaseGateSource } from '../../src/db/gate-source.js'
import { countIssues, duplicatePairs } from '../../src/db/issues-repo.js'
import { RedisStockGate } from '../../src/gate/redis-stock-gate.js'
import { RedisStreamWorker } from '../../src/queue/redis-stream-worker.js'
import { connectRedis, createRedis, type RedisClient } from '../../src/redis/connection.js'
import { RedisKeys } from '../../src/redis/keys.js'
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { deleteKeys, REDIS_URL, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'

const WINS = 12_000

describe('stream worker batches', { skip: await skipUnless('redis') }, () => {
  const prefix = uniquePrefix()
  const keys = new RedisKeys(prefix)
  let t: TestDatabase
  let client: RedisClient
  let gate: RedisStockGate

  before(async () => {
    const config = loadConfig({ REDIS_URL, REDIS_KEY_PREFIX: prefix })
    if (!config.redis) throw new Error('no redis')
    client = createRedis(config.redis, 'worker-batches-test')
    await connectRedis(client)
    t = await createTestDatabase('sqlite')
    gate = new RedisStockGate({ client, keys, source: databaseGateSource(t.database.db) })
  })
  after(async () => {
    await deleteKeys(client, prefix)
    await gate?.close()
    await t?.drop()
  })

  /** A coupon with `wins` wins granted through the gate, all queued in its stream. */
  async function queuedCoupon(wins: number, totalQuantity: number | null = null) {
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
    assert.equal(outcomes.filter((o) => o.won).length, wins)
    assert.equal(await client.xlen(keys.coupon(coupon.id).stream), wins)
    return coupon.id
  }

  const worker = (loadGate?: (couponId: number) => Promise<unknown>) =>
    new RedisStreamWorker({
      client,
      keys,
      db: t.database.db,
      logger: pino({ level: 'silent' }),
      batchSize: 1000,
      txRows: 10_000,
      claimIdleMs: 60_000,
      maxAttempts: 3,
      loadGate,
    })

  it('persists 12,000 queued wins in transactions of 10,000 + 2,000 and empties the stream', async () => {
    const couponId = await queuedCoupon(WINS)
    const stream = keys.coupon(couponId).stream
    // One pass: a transaction of 10,000 (ten reads of 1,000), the next 2,000 read
    // while it is written, then a transaction of those.
    assert.equal(await worker().drainOnce(), WINS)
    assert.equal(await countIssues(t.database.db, couponId), WINS)
    assert.equal(await duplicatePairs(t.database.db, couponId), 0)
    assert.equal(await client.xlen(stream), 0)
    const pending = (await client.xpending(stream, 'persist')) as [number]
    assert.equal(Number(pending[0]), 0)
  })

  it('holds its batch while the gate state is lost, has it rebuilt, then persists every win', async () => {
    const couponId = await queuedCoupon(300, 1000)
    const k = keys.coupon(couponId)
    // Redis lost the gate's hashes but not the stream, and no request came yet.
    await client.del(k.meta, k.users, k.holes)
    const w = worker((id) => gate.won(id))
    await assert.rejects(w.drainOnce(), { name: 'GateNotLoaded' })
    assert.equal(await client.exists(k.meta), 1, 'the worker had the gate rebuilt')
    assert.equal(await w.drainOnce(), 300)
    assert.equal(await countIssues(t.database.db, couponId), 300)
    assert.equal(await client.xlen(k.dead), 0, 'nothing dead-lettered')
    assert.equal(await gate.won(couponId), 300)
    const again = await gate.tryIssue(couponId, 'u7', Date.now())
    assert.deepEqual(again, { won: false, refusal: 'ALREADY_ISSUED' })
  })
})
