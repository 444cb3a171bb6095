/**
 * Bad input on the admin routes: every case is a 4xx `{code, message}` and
 * changes nothing (no coupon created or changed, gate unchanged).
 */
import { after, before, describe, it } from 'node:test'
import {
  admin,
  couponBody,
  createCoupon,
  requestIssue,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import {
  assertAllRefused,
  type BadCase,
  bodyShapeCases,
  couponIdCases,
  fieldCases,
} from '../helpers/bad-input.js'

const INT32_MAX = 2_147_483_647

const BAD_INSTANTS = [
  '2026-11-24T13:00:00', // no offset
  '2026-11-24',
  'tomorrow',
  '',
  '2026-02-30T00:00:00Z',
  '2026-11-24T25:00:00Z',
  // outside MySQL's DATETIME, whose driver reads 0049 back as 2049
  '0049-06-01T00:00:00Z',
  '0999-12-31T23:59:59Z',
  1_795_500_000_000,
  null,
  true,
]

describe('bad input on the admin routes', () => {
  let t: TestApp
  let couponId: number
  before(async () => {
    t = await startApp()
    couponId = await createCoupon(t.app, { totalQuantity: 10 })
    for (const userId of ['someone', 'another']) await requestIssue(t.app, couponId, userId)
  })
  after(async () => t?.close())

  it('POST /v1/coupons', async () => {
    const base = { method: 'POST' as const, url: '/v1/coupons', headers: admin }
    const valid = couponBody()
    const field = (name: string, values: unknown[]) => fieldCases(base, valid, name, values)
    const start = valid.issueStart
    const cases: BadCase[] = [
      ...bodyShapeCases(base, valid),
      ...field('title', [undefined, '', 'x'.repeat(256), 'a\u0000b', 5, null, ['a']]),
      ...field('type', ['OTHER', 'first_come_first_served', null, 1]),
      ...field('totalQuantity', [undefined, '5', 0, -1, 1.5, INT32_MAX + 1, 1e300, true, {}]),
      ...field('discountAmount', [undefined, '100', -1, 1.5, INT32_MAX + 1, null]),
      ...field('minAvailableAmount', [undefined, '0', -1, 0.5, INT32_MAX + 1, null]),
      ...field('issueStart', [undefined, ...BAD_INSTANTS]),
      ...field('issueEnd', [
        undefined,
        ...BAD_INSTANTS,
        start, // equal to the start
        new Date(Date.parse(start) - 1).toISOString(), // before it
      ]),
      ...field('id', [1]),
      ...field('issuedQuantity', [0]),
      ...field('createdAt', [start]),
      ...field('remainingQuantity', [1]),
      ...field('foo', ['bar']),
    ]
    await assertAllRefused(t, cases, [couponId])
  })

  it('PATCH /v1/coupons/{couponId}', async () => {
    const url = `/v1/coupons/${couponId}`
    const base = { method: 'PATCH' as const, url, headers: admin }
    const valid = { title: 'changed', discountAmount: 1 }
    const field = (name: string, values: unknown[]) => fieldCases(base, valid, name, values)
    const coupon = (await t.app.inject({ method: 'GET', url })).json()
    const cases: BadCase[] = [
      ...bodyShapeCases(base, valid),
      ...field('title', ['', 'x'.repeat(256), '\u0000', 5, null]),
      ...field('totalQuantity', ['5', 0, -1, 1.5, INT32_MAX + 1, false]),
      ...field('discountAmount', ['1', -1, INT32_MAX + 1, null]),
      ...field('minAvailableAmount', [-1, 1.5, '0']),
      ...field('issueStart', [...BAD_INSTANTS, coupon.issueEnd]),
      ...field('issueEnd', [...BAD_INSTANTS, coupon.issueStart, '2000-01-01T00:00:00Z']),
      ...field('id', [couponId + 1]),
      ...field('issuedQuantity', [0]),
      ...field('type', ['FIRST_COME_FIRST_SERVED']),
      ...field('updatedAt', [coupon.updatedAt]),
      ...field('foo', [1]),
      {
        ...base,
        name: 'a quantity below the number won',
        body: { title: 'changed', totalQuantity: 1 },
        status: 409,
        code: 'QUANTITY_BELOW_ISSUED',
      },
    ]
    cases.push(...couponIdCases({ ...base, body: valid }, (id) => `/v1/coupons/${id}`), {
      ...base,
      name: 'an unknown coupon',
      url: '/v1/coupons/123456',
      body: valid,
      status: 404,
      code: 'COUPON_NOT_FOUND',
    })
    await assertAllRefused(t, cases, [couponId])
  })

  it('a valid admin request without the right token is 401 and changes nothing', async () => {
    const unauthorized = { status: 401, code: 'UNAUTHORIZED' }
    const cases: BadCase[] = []
    for (const [who, headers] of [
      ['no token', {}],
      ['a wrong token', { authorization: 'Bearer nope' }],
    ] as const) {
      cases.push(
        {
          name: who,
          method: 'POST',
          url: '/v1/coupons',
          headers,
          body: couponBody(),
          ...unauthorized,
        },
        {
          name: who,
          method: 'PATCH',
          url: `/v1/coupons/${couponId}`,
          headers,
          body: { title: 'x' },
          ...unauthorized,
        },
        { name: who, method: 'GET', url: '/v1/coupons', headers, ...unauthorized },
      )
    }
    await assertAllRefused(t, cases, [couponId])
  })
})
