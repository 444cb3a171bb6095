/**
 * Redis mode (PostgreSQL): a coupon's gate state is lost while its processes are
 * down (`kill -9`), and rebuilt from the database and the stream at the next
 * request. Keyed wins already persisted (rows) and keyed wins still queued (in
 * the stream, no worker ran) are both answered 201 with their rank again for the
 * same Idempotency-Key; another key, or none, is ALREADY_ISSUED; every win becomes
 * a row with the key it was won with, and the invariants hold in the database.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { listWins } from '../../src/db/issues-repo.js'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { assertInvariants } from '../helpers/invariants.js'
import { keyedStorm, keyOf } from '../helpers/keyed-storm.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { httpPool, tally, users, waitDrained, winsOf } from '../helpers/storm.js'

const PERSISTED = 400
const QUEUED = 400
const QUANTITY = 1000

describe('Idempotency-Key across kill -9 and a rebuilt gate (Redis, PostgreSQL)', {
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
  const kill = async (server: ServerProcess) => {
    server.signal('SIGKILL')
    assert.equal((await server.exited).signal, 'SIGKILL')
  }

  it('answers keyed wins, persisted or queued, 201 with the same rank', {
    timeout: 180_000,
  }, async () => {
    const first = await start()
    const couponId = await createCoupon(first, { totalQuantity: QUANTITY })
    const persistedUsers = users('p', 0, PERSISTED)
    const persisted = winsOf(await keyedStorm(first.url, couponId, persistedUsers))
    assert.equal(persisted.size, PERSISTED)
    const pool = httpPool(first.url, 4)
    await waitDrained(pool, couponId, 60_000)
    await pool.close()
    await kill(first)

    // Wins the gate queues while no worker runs: in the stream, not yet rows.
    const second = await start(['--no-worker'])
    const queuedUsers = users('q', 0, QUEUED)
    const queued = winsOf(await keyedStorm(second.url, couponId, queuedUsers))
    assert.equal(queued.size, QUEUED)
    await kill(second)

    // Redis loses the coupon's gate state; its stream (the queued wins) is left.
    const k = new RedisKeys(prefix).coupon(couponId)
    await redis.del(k.meta, k.users, k.holes)
    assert.equal(await redis.exists(k.meta, k.users), 0)
    assert.equal(await redis.xlen(k.stream), QUEUED)

    const third = await start()
    const everyone = [...persistedUsers, ...queuedUsers]
    const again = await keyedStorm(third.url, couponId, everyone)
    assert.deepEqual(tally(again), { '201': everyone.length })
    const answered = new Map([...persisted, ...queued])
    assert.deepEqual(winsOf(again), answered, 'the same rank for the same key')
    const others = await keyedStorm(third.url, couponId, everyone.slice(0, 300), (u) =>
      u.endsWith('7') ? null : `other-${u}`,
    )
    assert.deepEqual(tally(others), { '409 ALREADY_ISSUED': 300 })

    const pool3 = httpPool(third.url, 4)
    await waitDrained(pool3, couponId, 60_000)
    await pool3.close()
    const view = await assertInvariants(db.url, couponId, answered)
    assert.equal(view.rows, everyone.length)
    const rows = await listWins(db.database.db, couponId)
    assert.deepEqual(
      rows.filter((w) => w.requestId !== keyOf(w.userId)).map((w) => w.userId),
      [],
      'every row keeps the key of the request that won it',
    )
    assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')
  })
})
