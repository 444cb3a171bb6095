/**
 * Two service nodes on one Redis prefix and one database: an admin change made
 * through node A takes effect for node B's next request, although B caches the
 * coupon (and its sold-out state) locally.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { createCoupon, HOUR, iso, patchCoupon, requestIssue } from '../helpers/app.js'
import { redisSuite, type Service, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import {
  assertWinsPersisted,
  checkRows,
  steadyStorm,
  waitDrained,
  waitFor,
} from '../helpers/storm.js'

describe('cache invalidation across two nodes (Redis mode)', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()
  /** both on the suite's Redis prefix and database; only A runs a worker */
  let a: Service
  let b: Service
  /** couponId → (userId → rank) of every 201, from either node */
  const wins = new Map<number, Map<string, number>>()

  before(async () => {
    a = await suite.start()
    b = await suite.start({ worker: false })
  })

  async function issue(node: Service, couponId: number, userId: string) {
    const res = await requestIssue(node.app, couponId, userId)
    const body = res.json()
    if (res.statusCode === 201) {
      const won = wins.get(couponId) ?? new Map<string, number>()
      assert.ok(!won.has(userId), `${userId} answered 201 twice`)
      won.set(userId, body.rank)
      wins.set(couponId, won)
    }
    return { status: res.statusCode, code: body.code as string | undefined, body }
  }

  async function patch(node: Service, couponId: number, payload: Record<string, unknown>) {
    const res = await patchCoupon(node.app, couponId, payload)
    assert.equal(res.statusCode, 200, res.body)
  }

  it('a quantity raised on A after SOLD_OUT: B accepts a new win on its next request', async () => {
    for (let round = 0; round < 20; round++) {
      const couponId = await createCoupon(a.app, { totalQuantity: 1 })
      assert.equal((await issue(b, couponId, 'first')).status, 201)
      // B learns it is sold out, and then answers that from its cache.
      assert.equal((await issue(b, couponId, 'second')).code, 'SOLD_OUT')
      assert.equal((await issue(b, couponId, 'third')).code, 'SOLD_OUT')
      await patch(a, couponId, { totalQuantity: 2 })
      const next = await issue(b, couponId, 'third')
      assert.equal(next.status, 201, `round ${round}: ${JSON.stringify(next.body)}`)
      assert.equal(next.body.rank, 2)
    }
  })

  it('issueEnd moved into the past on A: B answers ISSUE_ENDED at once; reopened: B issues at once', async () => {
    for (let round = 0; round < 20; round++) {
      const couponId = await createCoupon(a.app, { totalQuantity: 100 })
      assert.equal((await issue(b, couponId, 'early')).status, 201) // B caches it open
      await patch(a, couponId, { issueEnd: iso(Date.now() - 1000) })
      const ended = await issue(b, couponId, 'late')
      assert.equal(ended.code, 'ISSUE_ENDED', `round ${round}: ${JSON.stringify(ended.body)}`)
      assert.equal((await issue(b, couponId, 'late')).code, 'ISSUE_ENDED') // now from B's cache
      await patch(a, couponId, { issueEnd: iso(Date.now() + HOUR) })
      const reopened = await issue(b, couponId, 'late')
      assert.equal(reopened.status, 201, `round ${round}: ${JSON.stringify(reopened.body)}`)
    }
  })

  it('ends with every win a row, and nothing else', async () => {
    assert.equal(wins.size, 40)
    for (const [couponId, won] of wins) {
      await waitDrained(a.pool, couponId)
      const view = await checkRows(a.container.database.db, couponId)
      assert.equal(view.rows, won.size)
      assertWinsPersisted(won, view)
    }
  })

  it('a change committed but never taken by the gate (its process died) is taken by the next process to start', async () => {
    const couponId = await createCoupon(a.app, { totalQuantity: 1 })
    assert.equal((await requestIssue(a.app, couponId, 'only-one')).statusCode, 201)
    assert.equal((await requestIssue(b.app, couponId, 'sold-out')).json().code, 'SOLD_OUT')
    // As a PATCH whose process died between its commit and its step 2 leaves it.
    await a.container.database.db
      .updateTable('coupons')
      .set({ total_quantity: 2 })
      .where('id', '=', couponId)
      .execute()
    assert.equal((await requestIssue(b.app, couponId, 'still-out')).json().code, 'SOLD_OUT')
    await suite.start({ worker: false })
    let n = 0
    await waitFor('the raised quantity taken', async () => {
      const res = await requestIssue(b.app, couponId, `after-start-${n++}`)
      return res.statusCode === 201
    })
  })

  it('"Stop now" sent by a clock 2 s behind: the recorded end is when it took, no win after it', async () => {
    const couponId = await createCoupon(a.app, { totalQuantity: null })
    const storm = steadyStorm(b.pool, couponId, 'stop-', 8)
    try {
      await waitFor('wins under way', async () => storm.replies.length >= 300)
      const sentEnd = Date.now() - 2000
      const res = await patchCoupon(a.app, couponId, { issueEnd: new Date(sentEnd).toISOString() })
      assert.equal(res.statusCode, 200, res.body)
      assert.ok(Date.parse(res.json().issueEnd) > sentEnd, 'the end as the gate took it')
    } finally {
      await storm.stop()
    }
    await waitDrained(a.pool, couponId)
    const coupon = await a.container.database.db
      .selectFrom('coupons')
      .select('date_issue_end')
      .where('id', '=', couponId)
      .executeTakeFirstOrThrow()
    const end = new Date(coupon.date_issue_end as Date | string)
    const rows = await a.container.database.db
      .selectFrom('coupon_issues')
      .select('date_issued')
      .where('coupon_id', '=', couponId)
      .execute()
    const after = rows.filter((r) => new Date(r.date_issued as Date | string) >= end)
    assert.ok(rows.length >= 300)
    assert.equal(
      after.length,
      0,
      `${after.length} of ${rows.length} wins at or after the recorded end`,
    )
  })
})
