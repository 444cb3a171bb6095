/**
 * The public issue API: issue, a user's status, a coupon's stats — outcomes and
 * their order, through `app.inject()` on a whole embedded service.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { InjectOptions } from 'fastify'
import {
  createCoupon,
  HOUR,
  ISO_UTC,
  iso,
  patchCoupon,
  requestIssue,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import { countIssues } from '../helpers/issue-counts.js'

describe('issue API', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
  })
  after(async () => t?.close())

  const inject = (options: InjectOptions) => t.app.inject(options)
  const issue = (id: number, userId: unknown) => requestIssue(t.app, id, userId)
  const status = (id: number, userId: string) =>
    inject({ method: 'GET', url: `/v1/coupons/${id}/issues/${encodeURIComponent(userId)}` })
  const stats = async (id: number) =>
    (await inject({ method: 'GET', url: `/v1/coupons/${id}/stats` })).json()
  const moveWindow = (id: number, start: number, end: number) =>
    patchCoupon(t.app, id, { issueStart: iso(start), issueEnd: iso(end) })

  it('answers a win 201 {couponId, userId, rank}, an integer userId as its string', async () => {
    const id = await createCoupon(t.app)
    const a = await issue(id, 7)
    assert.equal(a.statusCode, 201)
    assert.deepEqual(a.json(), { couponId: id, userId: '7', rank: 1 })
    const b = await issue(id, 'user.b@example:x_y-z')
    assert.deepEqual(b.json(), { couponId: id, userId: 'user.b@example:x_y-z', rank: 2 })
    const longest = 'L'.repeat(64)
    assert.deepEqual((await issue(id, longest)).json(), { couponId: id, userId: longest, rank: 3 })
    const big = await issue(id, Number.MAX_SAFE_INTEGER)
    assert.deepEqual(big.json(), { couponId: id, userId: '9007199254740991', rank: 4 })
  })

  it('treats 7 and "7" as one user: the second is 409 ALREADY_ISSUED', async () => {
    const id = await createCoupon(t.app)
    assert.equal((await issue(id, 7)).statusCode, 201)
    const again = await issue(id, '7')
    assert.equal(again.statusCode, 409)
    assert.deepEqual(Object.keys(again.json()), ['code', 'message'])
    assert.equal(again.json().code, 'ALREADY_ISSUED')
    assert.equal((await issue(id, 7)).json().code, 'ALREADY_ISSUED')
    // Case matters: "Abc" and "abc" are two users.
    assert.equal((await issue(id, 'Abc')).statusCode, 201)
    assert.equal((await issue(id, 'abc')).statusCode, 201)
    assert.equal(await countIssues(t.container.database.db, id), 3)
  })

  it('answers 404 COUPON_NOT_FOUND for an unknown coupon on every public route', async () => {
    for (const req of [
      { method: 'POST' as const, url: '/v1/coupons/424242/issues', payload: { userId: 1 } },
      { method: 'GET' as const, url: '/v1/coupons/424242/issues/1' },
      { method: 'GET' as const, url: '/v1/coupons/424242/stats' },
      { method: 'GET' as const, url: '/v1/coupons/424242' },
    ]) {
      const res = await inject(req)
      assert.equal(res.statusCode, 404, req.url)
      assert.equal(res.json().code, 'COUPON_NOT_FOUND')
    }
  })

  it('sells out: 409 SOLD_OUT once the quantity is won, a winner still ALREADY_ISSUED', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 2 })
    assert.equal((await issue(id, 's1')).json().rank, 1)
    assert.equal((await issue(id, 's2')).json().rank, 2)
    const late = await issue(id, 's3')
    assert.equal(late.statusCode, 409)
    assert.equal(late.json().code, 'SOLD_OUT')
    assert.equal((await issue(id, 's1')).json().code, 'ALREADY_ISSUED')
    assert.equal(await countIssues(t.container.database.db, id), 2)
  })

  it('refuses outside the window: ISSUE_NOT_STARTED before, ISSUE_ENDED after', async () => {
    const now = Date.now()
    const future = await createCoupon(t.app, {
      issueStart: iso(now + HOUR),
      issueEnd: iso(now + 2 * HOUR),
    })
    const past = await createCoupon(t.app, {
      issueStart: iso(now - 2 * HOUR),
      issueEnd: iso(now - HOUR),
    })
    const early = await issue(future, 'x')
    assert.equal(early.statusCode, 409)
    assert.equal(early.json().code, 'ISSUE_NOT_STARTED')
    const late = await issue(past, 'x')
    assert.equal(late.statusCode, 409)
    assert.equal(late.json().code, 'ISSUE_ENDED')
    assert.equal(await countIssues(t.container.database.db, future), 0)
    assert.equal(await countIssues(t.container.database.db, past), 0)
  })

  it('checks the window first, then the duplicate, then the quantity', async () => {
    const now = Date.now()
    const id = await createCoupon(t.app, { totalQuantity: 1 })
    assert.equal((await issue(id, 'winner')).statusCode, 201)

    await moveWindow(id, now + HOUR, now + 2 * HOUR)
    assert.equal((await issue(id, 'winner')).json().code, 'ISSUE_NOT_STARTED')
    assert.equal((await issue(id, 'other')).json().code, 'ISSUE_NOT_STARTED')
    await moveWindow(id, now - 2 * HOUR, now - HOUR)
    assert.equal((await issue(id, 'winner')).json().code, 'ISSUE_ENDED')
    assert.equal((await issue(id, 'other')).json().code, 'ISSUE_ENDED')
    await moveWindow(id, now - HOUR, now + HOUR)
    assert.equal((await issue(id, 'winner')).json().code, 'ALREADY_ISSUED')
    assert.equal((await issue(id, 'other')).json().code, 'SOLD_OUT')
  })

  it("reports a winner's status ISSUED at once; 404 NOT_ISSUED otherwise", async () => {
    const id = await createCoupon(t.app)
    const startedAt = Date.now()
    await issue(id, 'first')
    const win = await issue(id, 42)
    const res = await status(id, '42')
    assert.equal(res.statusCode, 200)
    const s = res.json()
    assert.deepEqual(Object.keys(s).sort(), [
      'couponId',
      'issuedAt',
      'orderId',
      'rank',
      'state',
      'usedAt',
      'userId',
    ])
    assert.deepEqual(
      { ...s, issuedAt: '' },
      {
        couponId: id,
        userId: '42',
        rank: win.json().rank,
        state: 'ISSUED',
        issuedAt: '',
        usedAt: null,
        orderId: null,
      },
    )
    assert.match(s.issuedAt, ISO_UTC)
    assert.ok(Date.parse(s.issuedAt) >= startedAt && Date.parse(s.issuedAt) <= Date.now())

    for (const userId of ['nobody', '43']) {
      const none = await status(id, userId)
      assert.equal(none.statusCode, 404)
      assert.equal(none.json().code, 'NOT_ISSUED')
    }
  })

  it('reports stats {couponId, totalQuantity, won, persisted, queued, remaining}', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 10 })
    assert.deepEqual(await stats(id), {
      couponId: id,
      totalQuantity: 10,
      codes: 0,
      limit: 10,
      won: 0,
      persisted: 0,
      queued: 0,
      remaining: 10,
    })
    for (const u of ['a', 'b', 'c']) await issue(id, u)
    await issue(id, 'a')
    assert.deepEqual(await stats(id), {
      couponId: id,
      totalQuantity: 10,
      codes: 0,
      limit: 10,
      won: 3,
      persisted: 3,
      queued: 0,
      remaining: 7,
    })

    const unlimited = await createCoupon(t.app, { totalQuantity: null })
    await issue(unlimited, 'a')
    assert.deepEqual(await stats(unlimited), {
      couponId: unlimited,
      totalQuantity: null,
      codes: 0,
      limit: null,
      won: 1,
      persisted: 1,
      queued: 0,
      remaining: null,
    })
  })

  it('keeps coupons apart: one user may win each coupon once', async () => {
    const a = await createCoupon(t.app, { totalQuantity: 1 })
    const b = await createCoupon(t.app, { totalQuantity: 1 })
    assert.deepEqual((await issue(a, 'both')).json(), { couponId: a, userId: 'both', rank: 1 })
    assert.deepEqual((await issue(b, 'both')).json(), { couponId: b, userId: 'both', rank: 1 })
    assert.equal((await stats(a)).won, 1)
    assert.equal((await stats(b)).won, 1)
  })
})
