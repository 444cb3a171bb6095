/**
 * The stream worker with a backlog: several reads gathered into one transaction,
 * every entry acknowledged and deleted (in slices small enough for Lua's unpack).
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

describe('stream worker with a backlog', { skip: await skipUnless('redis') }, () => {
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

  it('persists 12,000 queued wins in transactions of 10,000 + 2,000 and empties the stream', async () => {
    const now = Date.now()
    const coupon = await insertCoupon(
      t.database.db,
      {
        title: 'backlog',
        totalQuantity: null,
        discountAmount: 0,
        minAvailableAmount: 0,
        issueStart: new Date(now - 1000),
        issueEnd: new Date(now + 3_600_000),
      },
      new Date(),
    )
    await gate.configure({
      couponId: coupon.id,
      totalQuantity: null,
      issueStart: now - 1000,
      issueEnd: now + 3_600_000,
    })
    const outcomes = await Promise.all(
      Array.from({ length: WINS }, (_, i) => gate.tryIssue(coupon.id, `u${i}`, now)),
    )
    assert.equal(outcomes.filter((o) => o.won).length, WINS)
    const stream = keys.coupon(coupon.id).stream
    assert.equal(await client.xlen(stream), WINS)

    const worker = new RedisStreamWorker({
      client,
      keys,
      db: t.database.db,
      logger: pino({ level: 'silent' }),
      batchSize: 1000,
      txRows: 10_000,
      claimIdleMs: 60_000,
      maxAttempts: 3,
    })
    // One pass: a transaction of 10,000 (ten reads of 1,000), the next 2,000 read
    // while it is written, then a transaction of those.
    assert.equal(await worker.drainOnce(), WINS)
    assert.equal(await countIssues(t.database.db, coupon.id), WINS)
    assert.equal(await duplicatePairs(t.database.db, coupon.id), 0)
    assert.equal(await client.xlen(stream), 0)
    const pending = (await client.xpending(stream, 'persist')) as [number]
    assert.equal(Number(pending[0]), 0)
  })
})
