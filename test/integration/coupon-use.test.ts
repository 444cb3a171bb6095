/**
 * After the win, the contract of SPEC "using a coupon at checkout": spend (use),
 * give back (cancel), the user's status and coupon box — every answer, on each
 * dialect, embedded and in Redis mode (where the worker persists the wins).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Dialect } from '../../src/config.js'
import {
  admin,
  createCoupon,
  ISO_UTC,
  patchCoupon,
  requestIssue,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { countIssues } from '../helpers/issue-counts.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { waitFor } from '../helpers/storm.js'
import {
  cancelUse,
  couponBox,
  issuedQuantity,
  issueRow,
  issueStatus,
  useCoupon,
} from '../helpers/use.js'

/** The suite, given the service under test and how to wait for a win's row. */
function contract(service: () => TestApp) {
  const app = () => service().app
  const db = () => service().container.database.db
  const order = (orderId: string, orderAmount = 200_000) => ({ orderId, orderAmount })

  /** A coupon (min 110,000, discount 100,000) won by the users, each win a row. */
  async function wonBy(userIds: string[], over: Parameters<typeof createCoupon>[1] = {}) {
    const id = await createCoupon(app(), over)
    for (const u of userIds) assert.equal((await requestIssue(app(), id, u)).statusCode, 201)
    await waitFor(
      'the wins persisted',
      async () => (await countIssues(db(), id)) === userIds.length,
    )
    return id
  }

  it('spends: 200 {couponId, userId, orderId, discountAmount, usedAt}; a retry gets the same', async () => {
    const id = await wonBy(['alice'])
    const before = Date.now()
    const res = await useCoupon(app(), id, 'alice', order('order-1'))
    assert.equal(res.statusCode, 200, res.body)
    const body = res.json()
    assert.deepEqual(Object.keys(body).sort(), [
      'couponId',
      'discountAmount',
      'orderId',
      'usedAt',
      'userId',
    ])
    assert.deepEqual(
      { ...body, usedAt: '' },
      { couponId: id, userId: 'alice', orderId: 'order-1', discountAmount: 100_000, usedAt: '' },
    )
    assert.match(body.usedAt, ISO_UTC)
    // In Redis mode the spend's instant is the gate's clock (Redis TIME and an
    // offset), which a loaded machine can leave a few ms off this process's.
    const usedAt = Date.parse(body.usedAt)
    assert.ok(usedAt >= before - CLOCK_SLACK_MS && usedAt <= Date.now() + CLOCK_SLACK_MS)

    const retry = await useCoupon(app(), id, 'alice', order('order-1'))
    assert.equal(retry.statusCode, 200)
    assert.deepEqual(retry.json(), body)

    const status = await issueStatus(app(), id, 'alice')
    assert.equal(status.statusCode, 200)
    assert.deepEqual(
      { ...(status.json() as object), issuedAt: '' },
      {
        couponId: id,
        userId: 'alice',
        rank: 1,
        state: 'USED',
        issuedAt: '',
        usedAt: body.usedAt,
        orderId: 'order-1',
      },
    )
    const row = await issueRow(db(), id, 'alice')
    assert.equal(row?.order_id, 'order-1')
    assert.equal(new Date(row?.date_used ?? 0).toISOString(), body.usedAt)
    assert.equal(await issuedQuantity(db(), id), 1)
    // Counted once per coupon spent, not per retry.
    const metrics = await app().inject({ method: 'GET', url: '/metrics' })
    assert.match(
      metrics.body,
      new RegExp(`^firstcome_coupons_spent_total\\{coupon="${id}"\\} 1$`, 'm'),
    )
    // And on the dashboard's snapshot (read at most once a second).
    await waitFor('the dashboard to show the coupon spent', async () => {
      const overview = await app().inject({
        method: 'GET',
        url: '/v1/admin/overview',
        headers: admin,
      })
      const coupons = (overview.json() as { coupons: { id: number; spent: number }[] }).coupons
      return coupons.find((c) => c.id === id)?.spent === 1
    })
  })

  it('refuses another order 409 ALREADY_USED and changes nothing', async () => {
    const id = await wonBy(['bob'])
    assert.equal((await useCoupon(app(), id, 'bob', order('o-1'))).statusCode, 200)
    const before = await issueRow(db(), id, 'bob')
    const res = await useCoupon(app(), id, 'bob', order('o-2'))
    assert.equal(res.statusCode, 409)
    assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
    assert.equal(res.json().code, 'ALREADY_USED')
    assert.deepEqual(await issueRow(db(), id, 'bob'), before)
  })

  it('answers 404 NOT_ISSUED for a user without the coupon, COUPON_NOT_FOUND for none', async () => {
    const id = await wonBy(['carol'])
    for (const res of [
      await useCoupon(app(), id, 'dave', order('o-1')),
      await cancelUse(app(), id, 'dave', 'o-1'),
    ]) {
      assert.equal(res.statusCode, 404)
      assert.equal(res.json().code, 'NOT_ISSUED')
    }
    for (const res of [
      await useCoupon(app(), 987_654, 'carol', order('o-1')),
      await cancelUse(app(), 987_654, 'carol', 'o-1'),
    ]) {
      assert.equal(res.statusCode, 404)
      assert.equal(res.json().code, 'COUPON_NOT_FOUND')
    }
    assert.equal(await countIssues(db(), id), 1)
  })

  it('answers 422 ORDER_BELOW_MINIMUM below minAvailableAmount; the minimum itself is enough', async () => {
    const id = await wonBy(['erin'])
    const before = await issueRow(db(), id, 'erin')
    const low = await useCoupon(app(), id, 'erin', order('o-1', 109_999))
    assert.equal(low.statusCode, 422)
    assert.deepEqual(Object.keys(low.json()), ['code', 'message'])
    assert.equal(low.json().code, 'ORDER_BELOW_MINIMUM')
    assert.deepEqual(await issueRow(db(), id, 'erin'), before)
    assert.equal((await useCoupon(app(), id, 'erin', order('o-1', 110_000))).statusCode, 200)

    // The minimum as it is now: a PATCH applies to the next spend.
    const free = await wonBy(['erin'], { minAvailableAmount: 0 })
    assert.equal((await useCoupon(app(), free, 'erin', order('o-2', 0))).statusCode, 200)
  })

  it('gives the coupon back on cancel (200 ISSUED), again is 200, then another order may spend it', async () => {
    const id = await wonBy(['frank'])
    const used = (await useCoupon(app(), id, 'frank', order('o-1'))).json()
    const res = await cancelUse(app(), id, 'frank', 'o-1')
    assert.equal(res.statusCode, 200, res.body)
    const s = res.json()
    assert.deepEqual(
      { ...s, issuedAt: '' },
      {
        couponId: id,
        userId: 'frank',
        rank: 1,
        state: 'ISSUED',
        issuedAt: '',
        usedAt: null,
        orderId: null,
      },
    )
    assert.match(s.issuedAt, ISO_UTC)
    const again = await cancelUse(app(), id, 'frank', 'o-1')
    assert.equal(again.statusCode, 200)
    assert.deepEqual(again.json(), s)
    assert.deepEqual((await issueStatus(app(), id, 'frank')).json(), s)

    const second = await useCoupon(app(), id, 'frank', order('o-2'))
    assert.equal(second.statusCode, 200)
    assert.equal(second.json().orderId, 'o-2')
    assert.ok(Date.parse(second.json().usedAt) >= Date.parse(used.usedAt))
    assert.equal(await issuedQuantity(db(), id), 1)
  })

  it('refuses a cancel by another order 409 USED_BY_ANOTHER_ORDER and changes nothing', async () => {
    const id = await wonBy(['gina'])
    assert.equal((await useCoupon(app(), id, 'gina', order('mine'))).statusCode, 200)
    const before = await issueRow(db(), id, 'gina')
    const res = await cancelUse(app(), id, 'gina', 'theirs')
    assert.equal(res.statusCode, 409)
    assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
    assert.equal(res.json().code, 'USED_BY_ANOTHER_ORDER')
    assert.deepEqual(await issueRow(db(), id, 'gina'), before)
    assert.equal((await issueStatus(app(), id, 'gina')).json().state, 'USED')
  })

  it('shows an unused coupon ISSUED with orderId null', async () => {
    const id = await wonBy(['hana'])
    const s = (await issueStatus(app(), id, 'hana')).json()
    assert.equal(s.state, 'ISSUED')
    assert.equal(s.usedAt, null)
    assert.equal(s.orderId, null)
  })

  it("lists the user's coupons newest first with their terms and states", async () => {
    const user = `box-${Date.now()}`
    const first = await wonBy([user], {
      title: 'first',
      discountAmount: 1000,
      minAvailableAmount: 5000,
    })
    const second = await wonBy([user], { title: 'second' })
    const third = await wonBy([user], { title: 'third', totalQuantity: null })
    await wonBy(['someone-else'], { title: 'not hers' })
    assert.equal((await useCoupon(app(), second, user, order('o-box'))).statusCode, 200)

    const res = await couponBox(app(), user)
    assert.equal(res.statusCode, 200, res.body)
    const { items } = res.json()
    assert.deepEqual(
      items.map((i: Record<string, unknown>) => ({ ...i, issuedAt: '', usedAt: i.usedAt && '' })),
      [
        {
          couponId: third,
          title: 'third',
          discountAmount: 100_000,
          minAvailableAmount: 110_000,
          rank: 1,
          state: 'ISSUED',
          issuedAt: '',
          usedAt: null,
          orderId: null,
          code: null,
        },
        {
          couponId: second,
          title: 'second',
          discountAmount: 100_000,
          minAvailableAmount: 110_000,
          rank: 1,
          state: 'USED',
          issuedAt: '',
          usedAt: '',
          orderId: 'o-box',
          code: null,
        },
        {
          couponId: first,
          title: 'first',
          discountAmount: 1000,
          minAvailableAmount: 5000,
          rank: 1,
          state: 'ISSUED',
          issuedAt: '',
          usedAt: null,
          orderId: null,
          code: null,
        },
      ],
    )
    for (const i of items) assert.match(i.issuedAt, ISO_UTC)
    const times = items.map((i: { issuedAt: string }) => Date.parse(i.issuedAt))
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    )

    const empty = await couponBox(app(), 'nobody-at-all')
    assert.equal(empty.statusCode, 200)
    assert.deepEqual(empty.json(), { items: [] })
  })

  it('takes the coupon terms as they are now (a PATCH of the discount shows in the box)', async () => {
    const id = await wonBy(['ivan'])
    assert.equal((await patchCoupon(app(), id, { discountAmount: 5 })).statusCode, 200)
    const item = (await couponBox(app(), 'ivan'))
      .json()
      .items.find((i: { couponId: number }) => i.couponId === id)
    assert.equal(item.discountAmount, 5)
    assert.equal((await useCoupon(app(), id, 'ivan', order('o-1'))).json().discountAmount, 5)
  })
}

for (const dialect of DIALECTS) {
  describe(`using a coupon, embedded on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let t: TestApp
    let url = ''
    before(async () => {
      url = await createDatabaseUrl(dialect)
      t = await startApp({ databaseUrl: url })
    })
    after(async () => {
      await t?.close()
      if (url) await dropDatabaseUrl(url)
    })
    contract(() => t)
  })
}

/** How far the gate's clock may be from this process's (see the spend's instant). */
const CLOCK_SLACK_MS = 1000
const REDIS_DIALECTS = DIALECTS.filter((d): d is Exclude<Dialect, 'sqlite'> => d !== 'sqlite')
for (const dialect of REDIS_DIALECTS) {
  describe(`using a coupon, Redis mode on ${dialect}`, {
    skip: await skipUnlessRedisSuite({ dialect }),
  }, () => {
    const suite = redisSuite({ dialect })
    let t: TestApp
    before(async () => {
      t = await suite.start()
    })
    contract(() => t)
  })
}
