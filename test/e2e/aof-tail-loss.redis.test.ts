/**
 * Redis with `appendfsync everysec` loses the tail of its AOF: a power loss,
 * simulated by cutting the AOF back to its size about a second before a `kill -9`,
 * then a restart in the middle of a storm across two API services (one of them
 * running the stream worker). The worker had already persisted much of what Redis
 * forgot; the gate must catch up from the database before it answers again, so
 * the database ends with no row beyond the quantity, no rank twice, no user twice,
 * and every answered win a row with its rank, except the wins the service counted
 * as lost (firstcome_wins_lost_total).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Counter } from 'prom-client'
import { admin, createCoupon } from '../helpers/app.js'
import { assertInvariants } from '../helpers/invariants.js'
import { metricValue } from '../helpers/metrics.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { checkRows, continuousStorm, tally, waitFor, winsOf } from '../helpers/storm.js'

const SUITE: RedisSuiteOptions = { ownRedis: { aofEverysec: true } }
const QUANTITY = 10_000

/** firstcome_wins_lost_total of a service (0 where it has no such metric). */
async function lostOf(s: Service): Promise<number> {
  const metric = s.container.metrics.registry.getSingleMetric('firstcome_wins_lost_total')
  return metric ? metricValue(metric as Counter) : 0
}

describe('Redis with AOF everysec loses its last second, restarted mid-storm', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)

  it('never hands out a rank or a unit the database holds, and counts what it lost', async (tc) => {
    const a = await suite.start({ worker: true }, tc)
    const b = await suite.start({ worker: false }, tc)
    const server = suite.server
    const couponId = await createCoupon(a.app, { totalQuantity: QUANTITY })
    const storms = [
      continuousStorm(a.pool, couponId, 'a', 16),
      continuousStorm(b.pool, couponId, 'b', 16),
    ]
    const won = () =>
      storms.reduce((n, s) => n + s.replies.filter((r) => r.status === 201).length, 0)

    await waitFor('1,000 wins before the cut', () => won() >= 1000)
    // What the disk holds a second before the power loss: everything after it is lost.
    const aof = server.aof()
    const durable = aof.size()
    const wonAtCut = won()
    await sleep(1000)
    const wonAtKill = won()
    await server.kill()
    aof.truncate(durable)
    await server.start()
    const kept = await server.client().hlen(suite.keys.coupon(couponId).users)
    tc.diagnostic(
      `${wonAtKill} wins answered before the kill, ${wonAtKill - wonAtCut} of them in the second before; soon after the restart the gate holds ${kept}`,
    )
    await waitFor(
      'the coupon sold out after the restart',
      () => storms.some((s) => s.replies.some((r) => r.code === 'SOLD_OUT')),
      60_000,
    )
    const replies = (await Promise.all(storms.map((s) => s.stop()))).flat()
    tc.diagnostic(JSON.stringify(tally(replies)))

    const answered = winsOf(replies)
    await waitFor(
      'every answered win persisted or counted lost',
      async () => {
        const view = await checkRows(suite.db, couponId)
        const missing = [...answered].filter(([u, rank]) => view.ranks.get(u) !== rank).length
        const lost = (await lostOf(a)) + (await lostOf(b))
        return missing <= lost && (await suite.pending(couponId)) === 0
      },
      30_000,
    ).catch(() => {}) // the assertions below say what is wrong
    const lost = (await lostOf(a)) + (await lostOf(b))
    const view = await checkRows(suite.db, couponId)
    assert.ok(view.rows <= QUANTITY, `oversold: ${view.rows} rows`)
    const missing = new Map([...answered].filter(([u, rank]) => view.ranks.get(u) !== rank))
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
  })
})
