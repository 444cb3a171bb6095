/**
 * The routes a database fault reaches, asked through `inject()` of an app in this
 * process, and what they must answer while it lasts: 503 UNAVAILABLE with
 * Retry-After, never a 500.
 */
import assert from 'node:assert/strict'
import type { LightMyRequestResponse } from 'fastify'
import { GroupCommitRecorder } from '../../src/queue/group-commit-recorder.js'
import { admin, couponBody, type TestApp } from './app.js'
import { useCoupon } from './use.js'
import { waitFor } from './wait.js'

export interface RouteAnswer {
  route: string
  status: number
  code: string | undefined
  retryAfter: string | undefined
}

function answerOf(route: string, res: LightMyRequestResponse): RouteAnswer {
  let code: string | undefined
  try {
    code = (res.json() as { code?: string }).code
  } catch {}
  const retryAfter = res.headers['retry-after']
  return { route, status: res.statusCode, code, retryAfter: retryAfter?.toString() }
}

/** `POST /v1/coupons/{id}/issues` with an Idempotency-Key. */
export async function issueWithKey(t: TestApp, couponId: number, userId: string, key: string) {
  const res = await t.app.inject({
    method: 'POST',
    url: `/v1/coupons/${couponId}/issues`,
    headers: { 'idempotency-key': key },
    payload: { userId },
  })
  return { ...answerOf('issue', res), rank: res.statusCode === 201 ? res.json().rank : null }
}

/** Checkout: the admin spends `userId`'s coupon on an order. */
export async function checkout(t: TestApp, couponId: number, userId: string) {
  const res = await useCoupon(
    t.app,
    couponId,
    userId,
    { orderId: `order-${userId}`, orderAmount: 1_000_000 },
    admin,
  )
  return answerOf('checkout', res)
}

/** The write routes but the issue: checkout, admin create and PATCH. */
export async function otherWrites(t: TestApp, couponId: number, winner: string) {
  const created = await t.app.inject({
    method: 'POST',
    url: '/v1/coupons',
    headers: admin,
    payload: couponBody({ title: 'during the fault' }),
  })
  const patched = await t.app.inject({
    method: 'PATCH',
    url: `/v1/coupons/${couponId}`,
    headers: admin,
    payload: { title: 'patched during the fault' },
  })
  return [
    await checkout(t, couponId, winner),
    answerOf('create', created),
    answerOf('patch', patched),
  ]
}

export async function readiness(t: TestApp) {
  return answerOf('readyz', await t.app.inject({ method: 'GET', url: '/readyz' }))
}

/** Waits until every win handed to the group commit is a row, and readiness is back. */
export function recovered(t: TestApp) {
  return waitFor(
    'writes to pass and readiness to be back',
    async () => {
      const recorder = t.container.recorder
      const backlog = recorder instanceof GroupCommitRecorder ? recorder.backlog : 0
      return backlog === 0 && (await readiness(t)).status === 200
    },
    30_000,
  )
}

export function assertUnavailable(answers: readonly RouteAnswer[], fault: string) {
  for (const a of answers) {
    assert.equal(a.status, 503, `${a.route} during ${fault}: ${JSON.stringify(a)}`)
    assert.equal(a.code, 'UNAVAILABLE', `${a.route} during ${fault}`)
    assert.equal(a.retryAfter, '1', `${a.route} during ${fault}: Retry-After`)
  }
}
