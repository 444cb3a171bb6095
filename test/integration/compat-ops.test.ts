/**
 * The original system's routes (same bodies, same answers) and the operations
 * routes: health, readiness, metrics, docs, dashboard, unknown routes.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createCoupon, HOUR, iso, requestIssue, startApp, type TestApp } from '../helpers/app.js'

const COMPAT_ROUTES = ['/v1/issue', '/v1/issue-async', '/v2/issue-async']

const MESSAGES = {
  soldOut: '쿠폰 발급 수량이 유효하지 않습니다.',
  window: '쿠폰 발급 기간이 유효하지 않습니다.',
  unknown: '존재하지 않는 쿠폰입니다.',
  duplicate: '이미 발급된 쿠폰입니다.',
}

describe('compatibility routes', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
  })
  after(async () => t?.close())

  const compat = (url: string, couponId: number, userId: number) =>
    t.app.inject({ method: 'POST', url, payload: { userId, couponId } })

  for (const url of COMPAT_ROUTES) {
    it(`POST ${url} answers 200 {isSuccess} with the original's messages`, async () => {
      const now = Date.now()
      const id = await createCoupon(t.app, { totalQuantity: 1 })
      const expectations: [number, number, unknown][] = [
        [id, 1, { isSuccess: true }],
        [id, 1, { isSuccess: false, comment: MESSAGES.duplicate }],
        [id, 2, { isSuccess: false, comment: MESSAGES.soldOut }],
        [999_999, 1, { isSuccess: false, comment: MESSAGES.unknown }],
        [
          await createCoupon(t.app, { issueStart: iso(now + HOUR), issueEnd: iso(now + 2 * HOUR) }),
          1,
          { isSuccess: false, comment: MESSAGES.window },
        ],
        [
          await createCoupon(t.app, { issueStart: iso(now - 2 * HOUR), issueEnd: iso(now - HOUR) }),
          1,
          { isSuccess: false, comment: MESSAGES.window },
        ],
      ]
      for (const [couponId, userId, expected] of expectations) {
        const res = await compat(url, couponId, userId)
        assert.equal(res.statusCode, 200)
        assert.deepEqual(res.json(), expected, `coupon ${couponId} user ${userId}`)
      }
    })
  }

  it('shares one gate with the /v1 API: the user is the integer as a string', async () => {
    const id = await createCoupon(t.app)
    assert.deepEqual((await compat('/v1/issue', id, 77)).json(), { isSuccess: true })
    const status = await t.app.inject({ method: 'GET', url: `/v1/coupons/${id}/issues/77` })
    assert.equal(status.json().state, 'ISSUED')
    assert.equal(status.json().rank, 1)
    const again = await requestIssue(t.app, id, '77')
    assert.equal(again.json().code, 'ALREADY_ISSUED')
    assert.deepEqual((await compat('/v2/issue-async', id, 77)).json(), {
      isSuccess: false,
      comment: MESSAGES.duplicate,
    })
  })

  it('GET /hello answers hello!', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/hello' })
    assert.equal(res.statusCode, 200)
    assert.equal(res.body, 'hello!')
    assert.match(String(res.headers['content-type']), /^text\/plain/)
  })
})

describe('operations routes', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
  })
  after(async () => t?.close())

  it('GET /healthz and /readyz answer 200', async () => {
    const health = await t.app.inject({ method: 'GET', url: '/healthz' })
    assert.equal(health.statusCode, 200)
    const ready = await t.app.inject({ method: 'GET', url: '/readyz' })
    assert.equal(ready.statusCode, 200)
    assert.deepEqual(ready.json(), { status: 'ready', checks: { database: 'up' } })
  })

  it('GET /metrics is Prometheus text with issue outcomes and request durations', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 1 })
    for (const userId of [1, 2, 1]) await requestIssue(t.app, id, userId)
    const res = await t.app.inject({ method: 'GET', url: '/metrics' })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
    assert.match(res.body, /^# TYPE firstcome_issue_outcomes_total counter$/m)
    assert.match(res.body, /^firstcome_issue_outcomes_total\{outcome="WON"\} 1$/m)
    assert.match(res.body, /^firstcome_issue_outcomes_total\{outcome="SOLD_OUT"\} 1$/m)
    assert.match(res.body, /^firstcome_issue_outcomes_total\{outcome="ALREADY_ISSUED"\} 1$/m)
    assert.match(res.body, /^# TYPE http_request_duration_seconds histogram$/m)
    assert.match(
      res.body,
      /^http_request_duration_seconds_count\{method="POST",route="\/v1\/coupons\/:couponId\/issues",status_code="201"\} 1$/m,
    )
    assert.match(
      res.body,
      /^http_request_duration_seconds_count\{method="POST",route="\/v1\/coupons\/:couponId\/issues",status_code="409"\} 2$/m,
    )
  })

  it('GET /docs serves the OpenAPI UI and /docs/json lists the API routes', async () => {
    const ui = await t.app.inject({ method: 'GET', url: '/docs' })
    assert.equal(ui.statusCode, 200)
    assert.match(String(ui.headers['content-type']), /^text\/html/)
    assert.match(ui.body, /swagger-ui/i)
    const doc = await t.app.inject({ method: 'GET', url: '/docs/json' })
    assert.equal(doc.statusCode, 200)
    const spec = doc.json()
    assert.match(spec.openapi, /^3\./)
    const paths = Object.keys(spec.paths)
    for (const path of [
      '/v1/coupons',
      '/v1/coupons/{couponId}',
      '/v1/coupons/{couponId}/issues',
      '/v1/coupons/{couponId}/issues/{userId}',
      '/v1/coupons/{couponId}/stats',
      '/v1/coupons/{couponId}/issues/{userId}/use',
      '/v1/users/{userId}/coupons',
      ...COMPAT_ROUTES,
    ]) {
      assert.ok(paths.includes(path), `${path} is documented`)
    }
    assert.ok(spec.paths['/v1/coupons'].post)
    assert.ok(spec.paths['/v1/coupons/{couponId}'].patch)
    const use = spec.paths['/v1/coupons/{couponId}/issues/{userId}/use']
    assert.deepEqual(
      Object.keys(use.post.requestBody.content['application/json'].schema.properties),
      ['orderId', 'orderAmount'],
    )
    assert.ok(use.post.responses['200'])
    assert.ok(
      use.delete.parameters.some(
        (p: { name: string; in: string }) => p.name === 'orderId' && p.in === 'query',
      ),
    )
  })

  it('GET / serves the HTML dashboard', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/' })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/html/)
    assert.match(res.body, /<html/i)
  })

  it('answers an unknown route 404 {code: NOT_FOUND, message}', async () => {
    for (const req of [
      { method: 'GET' as const, url: '/nope' },
      { method: 'GET' as const, url: '/v1/coupons/1/issues' },
      { method: 'DELETE' as const, url: '/v1/coupons/1' },
      { method: 'POST' as const, url: '/v3/issue-async', payload: { userId: 1, couponId: 1 } },
    ]) {
      const res = await t.app.inject(req)
      assert.equal(res.statusCode, 404, `${req.method} ${req.url}`)
      assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
      assert.equal(res.json().code, 'NOT_FOUND')
      assert.equal(typeof res.json().message, 'string')
    }
  })
})
