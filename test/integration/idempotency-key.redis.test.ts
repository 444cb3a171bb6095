/**
 * Redis mode: a client's retry with the same Idempotency-Key after a 503 gets the
 * original answer. Redis (a redis-server of the test's own) is frozen, so the
 * requests time out with 503 while their calls wait on the socket; thawed, Redis
 * runs them and the wins stand. Each retry with its key hears 201 with the rank
 * the gate holds for it — also once the coupon is sold out and the local cache
 * knows it — never ALREADY_ISSUED.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createCoupon } from '../helpers/app.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { type IssueReply, issueOnce, tally, users, waitFor } from '../helpers/storm.js'

const SUITE: RedisSuiteOptions = { ownRedis: {} }
const USERS = users('i', 0, 40)

describe('Idempotency-Key in Redis mode (Redis frozen for a while)', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)
  let s: Service

  before(async () => {
    s = await suite.start({ env: { REDIS_COMMAND_TIMEOUT_MS: '300' } })
  })

  const withKey = (couponId: number, userId: string): Promise<IssueReply> =>
    issueOnce(s.pool, couponId, userId, { headers: { 'idempotency-key': `key-${userId}` } })

  it('a retry after a 503 hears the original win, with its rank', async (tc) => {
    const couponId = await createCoupon(s.app, { totalQuantity: USERS.length + 1 })
    const k = suite.keys.coupon(couponId)
    assert.equal((await issueOnce(s.pool, couponId, 'warm')).status, 201)
    const pid = suite.server.pid()
    assert.ok(pid)
    process.kill(pid, 'SIGSTOP')
    let first: IssueReply[]
    try {
      first = await Promise.all(USERS.map((u) => withKey(couponId, u)))
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    tc.diagnostic(`while frozen: ${JSON.stringify(tally(first))}`)
    assert.ok(first.every((r) => r.status === 503))
    await sleep(500)
    const decided = await suite.redis.hlen(k.users)
    tc.diagnostic(`${decided - 1} of them decided after the thaw`)

    const retries = await Promise.all(USERS.map((u) => withKey(couponId, u)))
    for (const r of retries) {
      assert.equal(r.status, 201, `${r.userId}: ${r.status} ${r.code}`)
      const held = await suite.redis.hget(k.users, r.userId)
      assert.equal(r.rank, Number(held?.split(':')[0]), `${r.userId} hears the rank it holds`)
    }
    // Sold out now (the last winner made it so): the same retries still hear their win.
    assert.equal((await issueOnce(s.pool, couponId, 'late')).code, 'SOLD_OUT')
    await waitFor('the cache to know it is sold out', async () => {
      return (await issueOnce(s.pool, couponId, 'late-2')).code === 'SOLD_OUT'
    })
    const again = await Promise.all(USERS.map((u) => withKey(couponId, u)))
    assert.deepEqual(
      again.map((r) => [r.status, r.rank]),
      retries.map((r) => [201, r.rank]),
    )
    // Without the key a repeat is what it always was.
    assert.equal((await issueOnce(s.pool, couponId, USERS[0] as string)).status, 409)
    const wins = new Map(retries.map((r) => [r.userId, r.rank ?? 0]))
    const view = await suite.assertSettled(s.pool, couponId, wins)
    assert.equal(view.rows, USERS.length + 1)
  })
})
