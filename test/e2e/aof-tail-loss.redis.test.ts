/**
 * Redis loses its last second in the middle of a storm across two API services
 * (one of them running the stream worker), and comes back behind the database:
 *
 * - `appendfsync everysec` and a power loss, simulated by cutting the AOF back to
 *   its size about a second before a `kill -9`, then a restart;
 * - a replica that stopped following a second before its master died, promoted
 *   in the master's place.
 *
 * The worker had already persisted much of what Redis forgot; the gate must catch
 * up from the database before it answers again, so the database ends with no row
 * beyond the quantity, no rank twice, no user twice, and every answered win a row
 * with its rank, except the wins the service counted as lost
 * (firstcome_wins_lost_total), which the dashboard shows.
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Redis } from 'ioredis'
import type { Counter } from 'prom-client'
import { admin, createCoupon } from '../helpers/app.js'
import { assertInvariants } from '../helpers/invariants.js'
import { metricValue } from '../helpers/metrics.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { checkRows, steadyStorm, tally, waitFor, winsOf } from '../helpers/storm.js'

const QUANTITY = 10_000

/** firstcome_wins_lost_total of a service (0 where it has no such metric). */
async function lostOf(s: Service): Promise<number> {
  const metric = s.container.metrics.registry.getSingleMetric('firstcome_wins_lost_total')
  return metric ? metricValue(metric as Counter) : 0
}

/**
 * A storm on both services until `forget` has made Redis forget its last second
 * and the coupon has sold out; then the invariants against the database.
 */
async function stormThroughLoss(
  tc: TestContext,
  suite: ReturnType<typeof redisSuite>,
  forget: (won: () => number) => Promise<void>,
  /** a client of the Redis serving after the loss */
  serving: () => Redis,
) {
  const a = await suite.start({ worker: true }, tc)
  const b = await suite.start({ worker: false }, tc)
  const couponId = await createCoupon(a.app, { totalQuantity: QUANTITY })
  const storms = [steadyStorm(a.pool, couponId, 'a', 16), steadyStorm(b.pool, couponId, 'b', 16)]
  const won = () => storms.reduce((n, s) => n + s.replies.filter((r) => r.status === 201).length, 0)

  await waitFor('1,000 wins before the loss', () => won() >= 1000)
  await forget(won)
  await waitFor(
    'the coupon sold out after the loss',
    () => storms.some((s) => s.replies.some((r) => r.code === 'SOLD_OUT')),
    60_000,
  )
  const replies = (await Promise.all(storms.map((s) => s.stop()))).flat()
  tc.diagnostic(JSON.stringify(tally(replies)))

  const answered = winsOf(replies)
  const missingOf = async () => {
    const view = await checkRows(suite.db, couponId)
    return new Map([...answered].filter(([u, rank]) => view.ranks.get(u) !== rank))
  }
  const lostNow = async () => (await lostOf(a)) + (await lostOf(b))
  const k = suite.keys.coupon(couponId)
  await waitFor(
    'every queued win persisted, every answered one a row or counted lost',
    async () =>
      (await serving().xlen(k.stream)) === 0 && (await missingOf()).size <= (await lostNow()),
    30_000,
  ).catch(() => {}) // the assertions below say what is wrong
  const lost = await lostNow()
  const view = await checkRows(suite.db, couponId)
  const [winners, holes, queued] = await Promise.all([
    serving().hlen(k.users),
    serving().zcard(k.holes),
    serving().xlen(k.stream),
  ])
  tc.diagnostic(`the gate: ${winners} winners, ${holes} holes, ${queued} queued`)
  assert.ok(view.rows <= QUANTITY, `oversold: ${view.rows} rows`)
  const missing = await missingOf()
  tc.diagnostic(
    `${answered.size} answered 201, ${view.rows} rows, ${missing.size} answered wins not rows, ${lost} counted lost`,
  )
  assert.ok(
    missing.size <= lost,
    `${missing.size} answered wins are not rows, only ${lost} counted lost`,
  )
  assert.ok(answered.size <= QUANTITY + lost, `${answered.size} wins answered for ${QUANTITY}`)
  // The dashboard shows it, whichever process answers.
  await waitFor('the dashboard to show the wins lost', async () => {
    const res = await b.app.inject({ method: 'GET', url: '/v1/admin/overview', headers: admin })
    const coupon = (res.json() as { coupons: { id: number; lost: number }[] }).coupons.find(
      (c) => c.id === couponId,
    )
    return coupon?.lost === lost
  })
  await assertInvariants(
    suite.databaseUrl,
    couponId,
    new Map([...answered].filter(([u]) => !missing.has(u))),
  )
}

const AOF: RedisSuiteOptions = { ownRedis: { aofEverysec: true } }

describe('Redis with AOF everysec loses its last second, restarted mid-storm', {
  skip: await skipUnlessRedisSuite(AOF),
}, () => {
  const suite = redisSuite(AOF)

  it('never hands out a rank or a unit the database holds, and counts what it lost', async (tc) => {
    await stormThroughLoss(
      tc,
      suite,
      async (won) => {
        const server = suite.server
        // What the disk holds a second before the power loss: everything after it is lost.
        const aof = server.aof()
        const durable = aof.size()
        const wonAtCut = won()
        await sleep(1000)
        const wonAtKill = won()
        await server.kill()
        aof.truncate(durable)
        await server.start()
        tc.diagnostic(
          `${wonAtKill} wins answered before the kill, ${wonAtKill - wonAtCut} after the cut`,
        )
      },
      () => suite.redis,
    )
  })
})

const PROMOTED: RedisSuiteOptions = { ownRedis: {}, proxy: 'redis' }

describe('a replica a second behind, promoted when its master dies mid-storm', {
  skip: await skipUnlessRedisSuite(PROMOTED),
}, () => {
  const suite = redisSuite(PROMOTED)

  it('never hands out a rank or a unit the database holds, and counts what it lost', async (tc) => {
    let replica: RedisServer | undefined
    tc.after(() => replica?.stop())
    const master = suite.server
    replica = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(master.port)] })
    const follower = replica.client()
    await waitFor('the replica in sync', async () =>
      /master_link_status:up/.test(await follower.info('replication')),
    )
    await stormThroughLoss(
      tc,
      suite,
      async (won) => {
        // It stops following (as a replica whose link broke): what comes next it never gets.
        await follower.replicaof('NO', 'ONE')
        const wonAtCut = won()
        await sleep(1000)
        tc.diagnostic(`${won() - wonAtCut} wins answered after the replica stopped following`)
        await master.kill()
        await suite.proxy.retarget('127.0.0.1', (replica as RedisServer).port)
      },
      () => follower,
    )
  })
})
