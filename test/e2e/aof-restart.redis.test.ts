/**
 * Redis with `appendonly yes, appendfsync always` is killed -9 in the middle of a
 * storm and restarted on the same directory and port. Every acknowledged write
 * was on disk, so nothing answered 201 may be lost: at the end every winner has
 * its row with the rank it was told, the rows are exactly Redis's winners, and
 * the ranks have no gap. Meanwhile the service answers 503 + Retry-After within
 * a bound, and resumes by itself.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createCoupon } from '../helpers/app.js'
import { type RedisSuiteOptions, redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { oneTo, sortedRanks, steadyStorm, tally, waitFor, winsOf } from '../helpers/storm.js'

const SUITE: RedisSuiteOptions = { ownRedis: { aofAlways: true } }
const BOUND_MS = 3000

describe('Redis with AOF always, killed -9 mid-storm and restarted', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)

  it('loses no acknowledged win, answers 503 within a bound meanwhile, and resumes by itself', async (tc) => {
    const { app, pool } = await suite.start({}, tc)
    const server = suite.server
    const couponId = await createCoupon(app, { totalQuantity: 1_000_000 })
    const s = steadyStorm(pool, couponId, 'a', 32)

    await waitFor('1,000 wins before the crash', async () => winsOf(s.replies).size >= 1000)
    await server.kill()
    const killedAt = s.replies.length
    await waitFor('a 503 while Redis is down', async () =>
      s.replies.slice(killedAt).some((r) => r.status === 503),
    )
    await server.start() // replays the AOF
    const restartedAt = s.replies.length
    await waitFor(
      'wins again after the restart',
      async () => s.replies.slice(restartedAt).filter((r) => r.status === 201).length >= 1000,
      15_000,
    )
    const replies = await s.stop()

    const counts = tally(replies)
    tc.diagnostic(JSON.stringify(counts))
    const outage = replies.slice(killedAt, restartedAt)
    assert.ok(
      outage.some((r) => r.status === 503),
      'requests during the outage are answered 503',
    )
    for (const r of replies) {
      assert.ok(r.ms < BOUND_MS, `${r.userId} answered after ${Math.round(r.ms)} ms`)
      if (r.status === 201) continue
      assert.equal(r.status, 503, `${r.userId}: ${r.status} ${r.code}`)
      assert.equal(r.code, 'UNAVAILABLE')
      assert.equal(r.retryAfter, '1')
    }

    const wins = winsOf(replies)
    const view = await suite.assertSettled(pool, couponId, wins, 15_000)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(view.rows), 'no rank lost')
    tc.diagnostic(`${wins.size} answered 201; ${view.rows - wins.size} decided but answered 503`)
  })
})
