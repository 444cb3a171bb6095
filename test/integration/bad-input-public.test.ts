/**
 * Bad input on the public and compatibility routes: every case is a 4xx
 * `{code, message}` and changes nothing (no row, no win in the gate).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createCoupon, requestIssue, startApp, type TestApp } from '../helpers/app.js'
import {
  assertAllRefused,
  type BadCase,
  bodyShapeCases,
  couponIdCases,
  fieldCases,
} from '../helpers/bad-input.js'

const BAD_USER_IDS: unknown[] = [
  0,
  -1,
  1.5,
  2 ** 53, // above Number.MAX_SAFE_INTEGER
  1e300,
  '',
  'x'.repeat(65),
  'a b',
  'é',
  '<script>',
  'a/b',
  'a\u0000b',
  ' 1',
  true,
  null,
  {},
  [1],
]

describe('bad input on the public routes', () => {
  let t: TestApp
  let couponId: number
  before(async () => {
    t = await startApp()
    couponId = await createCoupon(t.app, { totalQuantity: 10 })
    assert.equal((await requestIssue(t.app, couponId, 'winner')).statusCode, 201)
  })
  after(async () => t?.close())

  it('POST /v1/coupons/{couponId}/issues', async () => {
    const base = { method: 'POST' as const, url: `/v1/coupons/${couponId}/issues` }
    // Every case is a request that would win if it were taken.
    const valid = { userId: 'would-win' }
    const cases: BadCase[] = [
      ...bodyShapeCases(base, valid),
      ...fieldCases(base, valid, 'userId', [undefined, ...BAD_USER_IDS]),
      ...fieldCases(base, valid, 'couponId', [couponId]),
      ...fieldCases(base, valid, 'extra', [1]),
      // JSON that JSON.stringify would not write: a number too big for a double's integers.
      {
        ...base,
        name: 'userId 9007199254740993',
        body: '{"userId": 9007199254740993}',
        status: 400,
        code: 'VALIDATION_FAILED',
      },
      ...couponIdCases({ ...base, body: valid }, (id) => `/v1/coupons/${id}/issues`),
    ]
    await assertAllRefused(t, cases, [couponId])
  })

  it('GET /v1/coupons/{couponId}, …/stats and …/issues/{userId}', async () => {
    const get = { method: 'GET' as const }
    const cases: BadCase[] = [
      ...couponIdCases(get, (id) => `/v1/coupons/${id}`),
      ...couponIdCases(get, (id) => `/v1/coupons/${id}/stats`),
      ...couponIdCases(get, (id) => `/v1/coupons/${id}/issues/winner`),
    ]
    for (const bad of [
      'x'.repeat(65),
      'u'.repeat(300),
      'a%20b',
      '%C3%A9',
      '%3Cscript%3E',
      'a%2Fb',
      '%E0%A4%A',
    ]) {
      cases.push({
        name: `user id ${bad.slice(0, 20)}`,
        method: 'GET',
        url: `/v1/coupons/${couponId}/issues/${bad}`,
        status: 400,
        code: 'VALIDATION_FAILED',
      })
    }
    await assertAllRefused(t, cases, [couponId])
  })

  for (const url of ['/v1/issue', '/v1/issue-async', '/v2/issue-async']) {
    it(`POST ${url}`, async () => {
      const base = { method: 'POST' as const, url }
      const valid = { userId: 424242, couponId }
      const cases: BadCase[] = [
        ...bodyShapeCases(base, valid),
        ...fieldCases(base, valid, 'userId', [
          undefined,
          '424242',
          'abc',
          0,
          -1,
          1.5,
          2 ** 53,
          null,
        ]),
        ...fieldCases(base, valid, 'couponId', [
          undefined,
          String(couponId),
          0,
          -1,
          1.5,
          2 ** 53,
          null,
        ]),
        ...fieldCases(base, valid, 'extra', [1]),
      ]
      await assertAllRefused(t, cases, [couponId])
    })
  }

  it('leaves the coupon issuable by the users the bad requests named', async () => {
    // Proof that the cases above were refused, not silently taken.
    for (const userId of ['would-win', 424242]) {
      const res = await requestIssue(t.app, couponId, userId)
      assert.equal(res.statusCode, 201, String(userId))
    }
  })
})
