/**
 * RATE_LIMIT_PER_IP: at most N issue requests per second per client IP; the
 * request over it gets 429 RATE_LIMITED with Retry-After; other routes and other
 * clients are not limited.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  admin,
  couponBody,
  createCoupon,
  requestIssue,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import { countIssues } from '../helpers/issue-counts.js'

const LIMIT = 5

describe('rate limit per client IP', () => {
  let t: TestApp
  let couponId: number
  before(async () => {
    t = await startApp({ env: { RATE_LIMIT_PER_IP: String(LIMIT) } })
    couponId = await createCoupon(t.app)
  })
  after(async () => t?.close())

  const issueFrom = (remoteAddress: string, userId: string) =>
    requestIssue(t.app, couponId, userId, { remoteAddress })

  it('answers the request over the limit 429 RATE_LIMITED with Retry-After', async () => {
    // One after another, well within one second.
    const answers = []
    for (let i = 0; i <= LIMIT; i++) answers.push(await issueFrom('10.0.0.1', `rl-${i}`))
    assert.equal(answers[LIMIT]?.statusCode, 429, 'the request over the limit')
    const limited = answers.filter((r) => r.statusCode === 429)
    assert.equal(limited.length, 1)
    assert.equal(answers.filter((r) => r.statusCode === 201).length, LIMIT)
    const res = limited[0]
    assert.ok(res)
    assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
    assert.equal(res.json().code, 'RATE_LIMITED')
    const retryAfter = Number(res.headers['retry-after'])
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${retryAfter}`)
    // The refused request issued nothing.
    assert.equal(await countIssues(t.container.database.db, couponId), LIMIT)

    // The compatibility routes count against the same per-client limit.
    const compat = await t.app.inject({
      method: 'POST',
      url: '/v1/issue',
      remoteAddress: '10.0.0.1',
      payload: { userId: 99, couponId },
    })
    assert.equal(compat.statusCode, 429)
    assert.equal(compat.json().code, 'RATE_LIMITED')
  })

  it('does not limit the other routes of a limited client', async () => {
    const ip = '10.0.0.2'
    for (let i = 0; i <= LIMIT; i++) await issueFrom(ip, `other-${i}`)
    assert.equal((await issueFrom(ip, 'other-x')).statusCode, 429)

    const reads = [
      `/v1/coupons/${couponId}`,
      `/v1/coupons/${couponId}/stats`,
      `/v1/coupons/${couponId}/issues/other-0`,
      '/healthz',
      '/hello',
    ]
    for (let round = 0; round < 2; round++) {
      for (const url of reads) {
        const res = await t.app.inject({ method: 'GET', url, remoteAddress: ip })
        assert.equal(res.statusCode, 200, url)
      }
      const created = await t.app.inject({
        method: 'POST',
        url: '/v1/coupons',
        headers: admin,
        remoteAddress: ip,
        payload: couponBody(),
      })
      assert.equal(created.statusCode, 201)
    }
  })

  it('counts every issue route against one limit per client', async () => {
    const ip = '10.0.0.5'
    const routes = ['/v1/issue', '/v1/issue-async', '/v2/issue-async']
    const statuses: number[] = []
    for (let i = 0; i <= LIMIT; i++) {
      const url = routes[i % routes.length] ?? '/v1/issue'
      const res = await t.app.inject({
        method: 'POST',
        url,
        remoteAddress: ip,
        payload: { userId: 5000 + i, couponId },
      })
      statuses.push(res.statusCode)
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429])
    assert.equal((await issueFrom(ip, 'spread-x')).statusCode, 429)
  })

  it('limits each client IP on its own', async () => {
    for (let i = 0; i <= LIMIT; i++) await issueFrom('10.0.0.3', `own-${i}`)
    assert.equal((await issueFrom('10.0.0.3', 'own-x')).statusCode, 429)
    const fresh = await issueFrom('10.0.0.4', 'fresh-user')
    assert.equal(fresh.statusCode, 201)
  })
})
