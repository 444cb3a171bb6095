/**
 * The issue fast lane in Redis mode, where the local coupon cache refuses what it
 * is certain of (sold out, window, unknown coupon) in the turn the request is
 * read: the same answers as Fastify's route, and every one counted as an outcome.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { createCoupon, HOUR, iso } from '../helpers/app.js'
import {
  compat,
  issueBody,
  laneAnswers,
  type Req,
  sameAnswers,
  viaSocket,
} from '../helpers/fast-lane.js'
import { countIssues } from '../helpers/issue-counts.js'
import { redisSuite, type Service, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { waitDrained } from '../helpers/storm.js'

async function outcomes(s: Service): Promise<Record<string, number>> {
  const text = (await s.app.inject({ method: 'GET', url: '/metrics' })).body
  const counts: Record<string, number> = {}
  for (const m of text.matchAll(
    /^firstcome_issue_outcomes_total\{coupon="\w+",outcome="(\w+)"\} (\d+)$/gm,
  ))
    counts[m[1] as string] = (counts[m[1] as string] ?? 0) + Number(m[2])
  return counts
}

describe('issue fast lane in Redis mode: cache refusals answered as Fastify answers them', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()
  let s: Service
  before(async () => {
    s = await suite.start()
  })

  it('sold out: the gate says it once, the cache after that; repeats and the compat route alike', async () => {
    const requests: Req[] = [
      { body: issueBody(1) },
      { body: issueBody(2) }, // the gate: SOLD_OUT, which the cache then remembers
      { body: issueBody(3) },
      { body: issueBody(1) }, // the cache answers before the gate could say ALREADY_ISSUED
      compat(4),
      { body: issueBody(5), headers: { 'content-type': 'application/json; charset=utf-8' } },
    ]
    const { answers, coupons } = await sameAnswers(
      s,
      () => createCoupon(s.app, { totalQuantity: 1 }),
      requests,
    )
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 409, 409, 409, 200, 409],
    )
    assert.deepEqual(
      answers.slice(1).map((a) => JSON.parse(a.body).code ?? JSON.parse(a.body).isSuccess),
      ['SOLD_OUT', 'SOLD_OUT', 'SOLD_OUT', false, 'SOLD_OUT'],
    )
    for (const id of coupons) {
      await waitDrained(s.pool, id)
      assert.equal(await countIssues(suite.db, id), 1)
    }
  })

  it('outside the window and unknown coupons: the cache refuses, as Fastify does', async () => {
    const now = Date.now()
    const windows = {
      ended: { issueStart: iso(now - 2 * HOUR), issueEnd: iso(now - HOUR) },
      notStarted: { issueStart: iso(now + HOUR), issueEnd: iso(now + 2 * HOUR) },
    }
    for (const window of Object.values(windows)) {
      const { answers } = await sameAnswers(s, () => createCoupon(s.app, window), [
        { body: issueBody(1) },
        { body: issueBody(1) }, // cached by now
        compat(2),
      ])
      assert.equal(answers[0]?.status, 409)
      assert.equal(answers[1]?.body, answers[0]?.body)
    }
    const missing = await viaSocket(s, '/v1/coupons/987654321/issues', { body: issueBody(1) })
    const again = await viaSocket(s, '/v1/coupons/987654321/issues', { body: issueBody(2) })
    assert.equal(missing.status, 404)
    assert.deepEqual(again, missing)
  })

  it("counts every refusal the cache answers in the lane, with the gate's", async () => {
    const couponId = await createCoupon(s.app, { totalQuantity: 2 })
    const before = await outcomes(s)
    const laneBefore = await laneAnswers(s)
    const path = `/v1/coupons/${couponId}/issues`
    const users = Array.from({ length: 200 }, (_, i) => i + 1)
    // Concurrently: some refusals come from the gate, the rest from the cache.
    const answers = await Promise.all(users.map((u) => viaSocket(s, path, { body: issueBody(u) })))
    const after = await outcomes(s)
    const won = answers.filter((a) => a.status === 201).length
    const soldOut = answers.filter((a) => a.status === 409 && a.body.includes('SOLD_OUT')).length
    assert.equal(won, 2)
    assert.equal(soldOut, 198)
    assert.equal((await laneAnswers(s)) - laneBefore, 200, 'every one answered by the lane')
    assert.equal((after.WON ?? 0) - (before.WON ?? 0), 2)
    assert.equal((after.SOLD_OUT ?? 0) - (before.SOLD_OUT ?? 0), 198)
    await waitDrained(s.pool, couponId)
    assert.equal(await countIssues(suite.db, couponId), 2)
  })
})
