/**
 * Real concurrency over real sockets, in either mode: thousands of simultaneous
 * issue requests (every user twice) on a small coupon. Exactly totalQuantity
 * wins, ranks exactly 1..totalQuantity, no user twice — in the answers, in the
 * gate and, once persisted, in the rows. Embedded mode runs on every dialect
 * selected (the in-process gate with that database as the system of record),
 * Redis mode on PostgreSQL and MySQL; the compatibility route /v1/issue once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Pool } from 'undici'
import type { Db } from '../../src/db/database.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { DIALECTS } from '../helpers/databases.js'
import { embedded, type ModeName, redisMode } from '../helpers/modes.js'
import type { Service } from '../helpers/redis-suite.js'
import {
  checkRows,
  httpPool,
  oneTo,
  soldOutStats,
  sortedRanks,
  storm,
  tally,
  twiceShuffled,
  users,
  waitDrained,
  winsOf,
} from '../helpers/storm.js'

const QUANTITY = 300
const USERS = 2500
const CONNECTIONS = 500

/**
 * Every user twice, in a fixed shuffle (no Math.random): reproducible, yet not in
 * user order, a user's two requests far apart or adjacent.
 */
const twice = <T>(ids: T[]) => twiceShuffled(ids, (i) => (i * 7919 + 104_729) % (i + 1))

/**
 * Whether a winner's other request is always told ALREADY_ISSUED: the embedded
 * gate checks for a duplicate before the quantity; in Redis mode the local cache
 * may answer a sold-out coupon's request before the gate sees it.
 */
const DUPLICATE_BEFORE_SOLD_OUT = {
  embedded: true,
  redis: false,
} satisfies Record<ModeName, boolean>

/** Once persisted: the rows are exactly the winners, with their ranks; the stats agree. */
async function assertRowsMatch(db: Db, pool: Pool, couponId: number, winners: Map<string, number>) {
  assert.deepEqual(await waitDrained(pool, couponId), soldOutStats(couponId, QUANTITY))
  const view = await checkRows(db, couponId) // no user has two rows
  assert.equal(view.rows, QUANTITY)
  assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(QUANTITY))
  for (const [userId, rank] of view.ranks)
    assert.equal(winners.get(userId), rank, `row of ${userId}`)
}

const MODES = [...DIALECTS.map(embedded), redisMode('postgres'), redisMode('mysql')]

for (const mode of MODES) {
  describe(`a storm on /v1 (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()
    let s: Service
    before(async () => {
      s = await suite.start({ connections: CONNECTIONS })
    })

    it(`${USERS * 2} parallel requests, ${USERS} users each twice, ${QUANTITY} coupons`, {
      timeout: 60_000,
    }, async () => {
      const couponId = await createCoupon(s.app, { totalQuantity: QUANTITY })
      const answers = await storm(s.pool, couponId, twice(users('user-', 1, USERS + 1)))

      const failures = answers.filter((a) => a.status === null)
      assert.deepEqual(failures.slice(0, 3), [], 'every request was answered')
      const wins = answers.filter((a) => a.status === 201)
      assert.equal(wins.length, QUANTITY)
      assert.deepEqual(sortedRanks(wins.map((w) => w.rank ?? 0)), oneTo(QUANTITY))
      const winners = winsOf(answers)
      assert.equal(winners.size, QUANTITY, 'no user won twice')
      for (const w of wins) assert.deepEqual(w.body, { couponId, userId: w.userId, rank: w.rank })

      const refusals = answers.filter((a) => a.status !== 201)
      const kinds = Object.keys(tally(refusals)).sort()
      const expected = ['409 ALREADY_ISSUED', '409 SOLD_OUT']
      if (DUPLICATE_BEFORE_SOLD_OUT[mode.mode]) assert.deepEqual(kinds, expected)
      else
        assert.deepEqual(
          kinds,
          expected.filter((k) => kinds.includes(k)),
          kinds.join(),
        )
      for (const a of refusals) {
        // Only a winner is told ALREADY_ISSUED; a winner's other request is never a win.
        if (a.code === 'ALREADY_ISSUED') assert.ok(winners.has(a.userId), a.userId)
      }
      const alreadyIssued = refusals.filter((a) => a.code === 'ALREADY_ISSUED').length
      assert.ok(alreadyIssued <= QUANTITY)
      assert.equal(refusals.length, USERS * 2 - QUANTITY)

      await assertRowsMatch(suite.db, s.pool, couponId, winners)
      const [winner, rank] = [...winners][0] as [string, number]
      const res = await s.pool.request({
        method: 'GET',
        path: `/v1/coupons/${couponId}/issues/${winner}`,
      })
      const status = (await res.body.json()) as { state: string; rank: number }
      assert.equal(res.statusCode, 200)
      assert.equal(status.state, 'ISSUED')
      assert.equal(status.rank, rank)
    })
  })
}

describe('a storm on the compatibility route /v1/issue (embedded, sqlite)', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
    await t.listen()
  })
  after(async () => t?.close())

  it(`${USERS * 2} parallel requests, ${USERS} users each twice, ${QUANTITY} coupons`, {
    timeout: 60_000,
  }, async (tc) => {
    const couponId = await createCoupon(t.app, { totalQuantity: QUANTITY })
    const everyone = Array.from({ length: USERS }, (_, i) => 1_000_000 + i)
    const p = httpPool(t.url, CONNECTIONS)
    tc.after(() => p.close())
    const answers = await storm(p, couponId, twice(everyone), { compatRoute: '/v1/issue' })

    assert.ok(answers.every((a) => a.status === 200))
    const bodies = tally(answers, (a) => JSON.stringify(a.body))
    assert.equal(bodies['{"isSuccess":true}'], QUANTITY)
    const duplicate = JSON.stringify({ isSuccess: false, comment: '이미 발급된 쿠폰입니다.' })
    const soldOut = JSON.stringify({
      isSuccess: false,
      comment: '쿠폰 발급 수량이 유효하지 않습니다.',
    })
    assert.deepEqual(Object.keys(bodies).sort(), ['{"isSuccess":true}', duplicate, soldOut].sort())
    assert.equal((bodies[duplicate] ?? 0) + (bodies[soldOut] ?? 0), USERS * 2 - QUANTITY)

    const winnerIds = new Set(
      answers.filter((a) => JSON.stringify(a.body) === '{"isSuccess":true}').map((a) => a.userId),
    )
    assert.equal(winnerIds.size, QUANTITY, 'no user won twice')
    const { ranks } = await checkRows(t.container.database.db, couponId)
    assert.deepEqual(new Set(ranks.keys()), winnerIds)
    await assertRowsMatch(t.container.database.db, p, couponId, ranks)
  })
})
