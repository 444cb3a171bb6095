/**
 * Bad input on the routes after the win (spend, give back, the coupon box):
 * every case is a 4xx `{code, message}` and changes nothing. Each request would
 * succeed if it were taken: it carries the service token, the winner's coupon is
 * unused and the order is big enough.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createCoupon, requestIssue, service, startApp, type TestApp } from '../helpers/app.js'
import {
  assertAllRefused,
  type BadCase,
  bodyShapeCases,
  couponIdCases,
  fieldCases,
} from '../helpers/bad-input.js'
import { useCoupon } from '../helpers/use.js'

const BAD_ORDER_IDS: unknown[] = [
  '',
  'x'.repeat(65),
  'a b',
  'é',
  'a/b',
  'a\u0000b',
  '<script>',
  ' 1',
  12345,
  true,
  null,
  {},
  ['o-1'],
]
const BAD_AMOUNTS: unknown[] = [
  -1,
  1.5,
  200_000.5,
  2_147_483_648,
  1e300,
  '200000',
  null,
  true,
  {},
  [200_000],
]
/** Path segments that are not a user id (encoded as a client would send them). */
const BAD_PATH_USERS = ['x'.repeat(65), 'a b', 'é', 'a/b', '<script>', 'a%00b', '%E0%A4%A']

describe('bad input on the routes after the win', () => {
  let t: TestApp
  let couponId: number
  let usedCoupon: number
  const valid = { orderId: 'would-spend', orderAmount: 200_000 }
  before(async () => {
    t = await startApp()
    couponId = await createCoupon(t.app, { totalQuantity: 10 })
    assert.equal((await requestIssue(t.app, couponId, 'winner')).statusCode, 201)
    // A used coupon, for the cancel cases (a good cancel would give it back).
    usedCoupon = await createCoupon(t.app, { totalQuantity: 10 })
    assert.equal((await requestIssue(t.app, usedCoupon, 'winner')).statusCode, 201)
    const used = await useCoupon(t.app, usedCoupon, 'winner', { ...valid, orderId: 'o-used' })
    assert.equal(used.statusCode, 200)
  })
  after(async () => t?.close())

  /** as the shop's backend: a caller allowed to spend */
  const refused = (cases: BadCase[]) =>
    assertAllRefused(
      t,
      cases.map((c) => ({ ...c, headers: { ...service, ...c.headers } })),
      [couponId, usedCoupon],
    )

  const userPathCases = (
    base: Omit<BadCase, 'name' | 'url' | 'status' | 'code'>,
    url: (userId: string) => string,
  ): BadCase[] =>
    BAD_PATH_USERS.map((u) => ({
      ...base,
      name: `user id ${u.slice(0, 20)}`,
      url: url(/%/.test(u) ? u : encodeURIComponent(u)),
      status: 400,
      code: 'VALIDATION_FAILED',
    }))

  it('POST /v1/coupons/{couponId}/issues/{userId}/use', async () => {
    const base = { method: 'POST' as const, url: `/v1/coupons/${couponId}/issues/winner/use` }
    const cases: BadCase[] = [
      ...bodyShapeCases(base, valid),
      ...fieldCases(base, valid, 'orderId', [undefined, ...BAD_ORDER_IDS]),
      ...fieldCases(base, valid, 'orderAmount', [undefined, ...BAD_AMOUNTS]),
      ...fieldCases(base, valid, 'extra', [1]),
      ...fieldCases(base, valid, 'userId', ['winner']),
      ...fieldCases(base, valid, 'discountAmount', [0]),
      ...couponIdCases(
        { method: 'POST', body: valid },
        (id) => `/v1/coupons/${id}/issues/winner/use`,
      ),
      ...userPathCases(
        { method: 'POST', body: valid },
        (u) => `/v1/coupons/${couponId}/issues/${u}/use`,
      ),
    ]
    await refused(cases)
  })

  it('DELETE /v1/coupons/{couponId}/issues/{userId}/use?orderId=', async () => {
    const path = `/v1/coupons/${usedCoupon}/issues/winner/use`
    const bad = (name: string, query: string): BadCase => ({
      name,
      method: 'DELETE',
      url: `${path}${query}`,
      status: 400,
      code: 'VALIDATION_FAILED',
    })
    const cases: BadCase[] = [
      bad('no orderId', ''),
      bad('an empty orderId', '?orderId='),
      bad('a long orderId', `?orderId=${'x'.repeat(65)}`),
      bad('a space in orderId', '?orderId=a%20b'),
      bad('a slash in orderId', '?orderId=a%2Fb'),
      bad('non-ASCII orderId', '?orderId=%C3%A9'),
      bad('an unknown parameter', '?orderId=o-used&extra=1'),
      bad('orderId twice', '?orderId=o-used&orderId=o-used'),
      ...couponIdCases(
        { method: 'DELETE' },
        (id) => `/v1/coupons/${id}/issues/winner/use?orderId=o-used`,
      ),
      ...userPathCases(
        { method: 'DELETE' },
        (u) => `/v1/coupons/${usedCoupon}/issues/${u}/use?orderId=o-used`,
      ),
    ]
    await refused(cases)
  })

  it('GET /v1/users/{userId}/coupons', async () => {
    const cases = userPathCases({ method: 'GET' }, (u) => `/v1/users/${u}/coupons`)
    await refused(cases)
  })
})
