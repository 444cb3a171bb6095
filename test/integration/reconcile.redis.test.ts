/**
 * Redis loses everything mid-event (a restart without persistence, FLUSHALL, a
 * failover to an empty replica), on a redis-server of the test's own. The gate
 * must rebuild each coupon from the database (plus the wins still in its stream)
 * and go on: no earlier winner wins twice, no oversell, ranks stay unique, and a
 * sold-out coupon still ends with ranks exactly 1..total.
 *
 * Wins answered 201 but not yet persisted when Redis loses its data are lost
 * with it: that is the documented limit of Redis without persistence. These
 * tests pin down that the loss never breaks consistency, and that wins the
 * worker held in hand at the time are reported in the dead-letter stream.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { createCoupon } from '../helpers/app.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import {
  assertWinsPersisted,
  checkRows,
  oneTo,
  sortedRanks,
  storm,
  twiceShuffled,
  users,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'

const TOTAL = 500
const SUITE: RedisSuiteOptions = { ownRedis: {} }

describe('Redis state wiped mid-event: the gate is rebuilt from the database', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)
  const service = (t: TestContext, env?: Record<string, string>) =>
    suite.start({ env, connections: 128 }, t)

  /**
   * After the loss, users 0..1499 of `prefix` storm the coupon, each twice: no
   * earlier winner wins again, and the new wins are exactly what is left.
   */
  async function stormTheRest(
    s: Service,
    couponId: number,
    prefix: string,
    earlier: Map<string, number>,
  ) {
    const replies = await storm(s.pool, couponId, twiceShuffled(users(prefix, 0, 1500)))
    const after = winsOf(replies)
    for (const userId of after.keys()) assert.ok(!earlier.has(userId), `${userId} won twice`)
    assert.equal(after.size, TOTAL - earlier.size, 'the gate counts only the earlier wins kept')
    return { replies, after }
  }

  /** Once drained: TOTAL won, and the rows are exactly `wins`, ranks 1..TOTAL. */
  async function assertSoldOut(s: Service, couponId: number, wins: Map<string, number>) {
    const stats = await waitDrained(s.pool, couponId)
    assert.equal(stats.won, TOTAL)
    const view = await checkRows(suite.db, couponId)
    assert.equal(view.rows, TOTAL)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(TOTAL))
    assertWinsPersisted(wins, view)
  }

  it('after the wins are persisted: earlier winners are refused, 500 distinct winners', async (t) => {
    const s = await service(t)
    const couponId = await createCoupon(s.app, { totalQuantity: TOTAL })
    const before = winsOf(await storm(s.pool, couponId, twiceShuffled(users('u', 0, 300))))
    assert.equal(before.size, 300)
    await waitDrained(s.pool, couponId)

    assert.equal(await suite.redis.flushall(), 'OK')

    const { replies, after } = await stormTheRest(s, couponId, 'u', before)
    for (const r of replies)
      assert.ok(r.status === 201 || r.status === 409, `${r.status} ${r.code}`)
    await assertSoldOut(s, couponId, new Map([...before, ...after]))
  })

  /**
   * 200 wins persisted, 150 more answered but still queued when Redis is wiped.
   * Returns the wins of each phase and the rows at the end.
   */
  async function wipeWhileQueued(
    s: Service,
    hooks: { beforeQueue?: () => Promise<void>; beforeWipe?: (couponId: number) => Promise<void> },
  ) {
    const couponId = await createCoupon(s.app, { totalQuantity: TOTAL })
    const persisted = winsOf(await storm(s.pool, couponId, users('q', 0, 200)))
    await waitDrained(s.pool, couponId)
    await hooks.beforeQueue?.()
    const queued = winsOf(await storm(s.pool, couponId, users('q', 200, 350)))
    assert.equal(queued.size, 150)
    await hooks.beforeWipe?.(couponId)

    assert.equal(await suite.redis.flushall(), 'OK')
    await s.startWorker()

    const { after } = await stormTheRest(s, couponId, 'q', persisted)
    const stats = await waitDrained(s.pool, couponId)
    assert.equal(stats.won, TOTAL)

    const view = await checkRows(suite.db, couponId)
    assert.ok(view.rows <= TOTAL)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(view.rows))
    assertWinsPersisted(persisted, view)
    assertWinsPersisted(after, view)
    // A queued win that was lost has no row unless its user won again after the wipe.
    const lost = [...queued.keys()].filter((u) => !view.ranks.has(u))
    for (const userId of lost) assert.ok(!after.has(userId))
    return { couponId, queued, after, view, lost }
  }

  it('while wins are queued and the worker is stopped: no oversell, no duplicate', async (t) => {
    const s = await service(t)
    const { lost, queued, after } = await wipeWhileQueued(s, {
      beforeQueue: () => s.stopWorker(),
      beforeWipe: async (couponId) => assert.equal(await suite.pending(couponId), 0),
    })
    t.diagnostic(
      `${queued.size} queued wins wiped: ${queued.size - lost.length} of their users won again, ${lost.length} lost (no row); ${after.size} wins after the wipe`,
    )
  })

  it('while the worker holds a batch: the lost wins are dead-lettered with the reason', async (t) => {
    // The worker reads the batch, then waits for it to age before writing it.
    const s = await service(t, { WORKER_PERSIST_DELAY_MS: '2000', WORKER_BATCH_SIZE: '1000' })
    const { couponId, queued, lost } = await wipeWhileQueued(s, {
      beforeQueue: () => s.stopWorker(),
      beforeWipe: async (couponId) => {
        await s.startWorker()
        await waitFor(
          'the worker to hold the 150 wins',
          async () => (await suite.pending(couponId)) === 150,
        )
      },
    })
    const dead = (await suite.redis.xrange(suite.keys.coupon(couponId).dead, '-', '+')) as [
      string,
      string[],
    ][]
    const reasons = new Map<string, string>()
    for (const [, f] of dead) {
      const field = (name: string) => f[f.indexOf(name) + 1] ?? ''
      reasons.set(field('u'), field('reason'))
    }
    for (const userId of lost)
      assert.match(reasons.get(userId) ?? 'not reported', /not in the gate/)
    // Only wins of the held batch are dead-lettered (their users may have won again).
    for (const userId of reasons.keys()) assert.ok(queued.has(userId), userId)
    t.diagnostic(`${lost.length} of ${queued.size} queued wins lost, all in the dead-letter stream`)
  })

  it('when only the gate hashes are lost (evicted) and the stream survives: nothing is lost', async (t) => {
    const s = await service(t)
    const couponId = await createCoupon(s.app, { totalQuantity: TOTAL })
    const persisted = winsOf(await storm(s.pool, couponId, users('e', 0, 200)))
    await waitDrained(s.pool, couponId)
    await s.stopWorker()
    const queued = winsOf(await storm(s.pool, couponId, users('e', 200, 350)))
    const k = suite.keys.coupon(couponId)
    assert.equal(await suite.redis.del(k.meta, k.users, k.holes), 2) // no holes yet
    await s.startWorker()

    const before = new Map([...persisted, ...queued])
    const { after } = await stormTheRest(s, couponId, 'e', before)
    await assertSoldOut(s, couponId, new Map([...before, ...after]))
  })
})
