/**
 * Redis goes away under a running service (a redis-server of the test's own):
 * issue requests are answered 503 UNAVAILABLE with Retry-After within the command
 * timeout — never a hang — `/readyz` turns 503, and once Redis is back the same
 * service issues again by itself. Killed (connections refused) and frozen
 * (SIGSTOP: connections open, nothing answers) are both covered.
 */
import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import type { Pool } from 'undici'
import { createCoupon } from '../helpers/app.js'
import { type RedisSuiteOptions, redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import {
  continuousStorm,
  type IssueReply,
  issueOnce,
  storm,
  users,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'

const COMMAND_TIMEOUT_MS = 1000
const SUITE: RedisSuiteOptions = { ownRedis: {} }

async function readyz(pool: Pool) {
  const started = performance.now()
  const res = await pool.request({ method: 'GET', path: '/readyz' })
  await res.body.dump()
  return { status: res.statusCode, ms: performance.now() - started }
}

/** Issues with 8 requests in flight, each for a new user, until `count` are answered. */
async function issueUntil(pool: Pool, couponId: number, prefix: string, count: number) {
  const s = continuousStorm(pool, couponId, prefix, 8)
  try {
    await waitFor(`${count} answers`, () => s.replies.length >= count)
  } finally {
    await s.stop()
  }
  return s.replies
}

/** Retries one user's request until it is a win: the service issues again. */
function winAgain(pool: Pool, couponId: number, userId: string, what: string) {
  return waitFor(
    what,
    async () => {
      const r = await issueOnce(pool, couponId, userId)
      return r.status === 201 ? r : null
    },
    10_000,
  )
}

function assertAllUnavailable(replies: IssueReply[], boundMs: number) {
  assert.ok(replies.length > 0)
  for (const r of replies) {
    assert.equal(r.status, 503, `${r.userId}: ${r.status} ${r.code}`)
    assert.equal(r.code, 'UNAVAILABLE')
    assert.equal(r.retryAfter, '1')
    assert.ok(r.ms < boundMs, `answered after ${Math.round(r.ms)} ms`)
  }
}

describe('Redis unreachable: 503 at once, then the service heals itself', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)
  const service = (t: TestContext) =>
    suite.start({ env: { REDIS_COMMAND_TIMEOUT_MS: String(COMMAND_TIMEOUT_MS) } }, t)

  it('killed: 503 with Retry-After at once and /readyz 503; restarted: issues again', async (t) => {
    const server = suite.server
    const { app, pool } = await service(t)
    const couponId = await createCoupon(app, { totalQuantity: 1000 })
    const wins = winsOf(await storm(pool, couponId, users('k', 0, 100)))
    await waitDrained(pool, couponId)
    assert.equal((await readyz(pool)).status, 200)

    await server.kill()
    const down = await issueUntil(pool, couponId, 'down-', 100)
    assertAllUnavailable(down, 1000)
    const notReady = await readyz(pool)
    assert.equal(notReady.status, 503)
    assert.ok(notReady.ms < 3000, `/readyz took ${Math.round(notReady.ms)} ms`)

    await server.start() // empty: no persistence
    const restartedAt = Date.now()
    const back = await winAgain(pool, couponId, 'back-0', 'a win after the restart')
    t.diagnostic(`issuing again ${Date.now() - restartedAt} ms after the restart`)
    wins.set(back.userId, back.rank ?? 0)
    assert.equal((await readyz(pool)).status, 200)

    // The gate was rebuilt from the database: the earlier winners are refused.
    const replies = await storm(pool, couponId, users('k', 0, 200))
    for (const r of replies) {
      if (wins.has(r.userId)) assert.equal(r.status, 409, `${r.userId} won twice`)
      else assert.equal(r.status, 201)
    }
    for (const [userId, rank] of winsOf(replies)) wins.set(userId, rank)
    const view = await suite.assertSettled(pool, couponId, wins)
    assert.equal(view.rows, 201)
  })

  it('frozen (SIGSTOP): 503 within the command timeout, not a hang; thawed: issues again', async (t) => {
    const pid = suite.server.pid()
    assert.ok(pid)
    const { app, pool } = await service(t)
    const couponId = await createCoupon(app, { totalQuantity: null })
    const wins = winsOf(await storm(pool, couponId, users('f', 0, 100)))

    process.kill(pid, 'SIGSTOP')
    t.after(() => {
      try {
        process.kill(pid, 'SIGCONT')
      } catch {}
    })
    // Each waits out the command timeout: two rounds of every lane.
    const down = await issueUntil(pool, couponId, 'frozen-', 16)
    assertAllUnavailable(down, COMMAND_TIMEOUT_MS + 1000)
    const notReady = await readyz(pool)
    assert.equal(notReady.status, 503)
    assert.ok(notReady.ms < 3000, `/readyz took ${Math.round(notReady.ms)} ms`)

    process.kill(pid, 'SIGCONT')
    const back = await winAgain(pool, couponId, 'thawed-0', 'a win after the thaw')
    wins.set(back.userId, back.rank ?? 0)
    for (const [userId, rank] of winsOf(await storm(pool, couponId, users('f', 100, 300))))
      wins.set(userId, rank)
    assert.equal((await readyz(pool)).status, 200)
    // Requests answered 503 while frozen may still have been decided once Redis
    // ran again: those wins are real (GET …/issues/{userId} shows them) and persist.
    const view = await suite.assertSettled(pool, couponId, wins)
    t.diagnostic(`${view.rows - wins.size} requests answered 503 were decided after the thaw`)
  })
})
