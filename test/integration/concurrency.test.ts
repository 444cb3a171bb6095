/**
 * Real concurrency over real sockets: thousands of simultaneous issue requests
 * (every user twice) on a small coupon. Exactly totalQuantity wins, ranks exactly
 * 1..totalQuantity, no user twice — in the answers, in the gate and in the rows.
 * The storm on /v1 runs on every dialect selected (embedded mode on PostgreSQL or
 * MySQL is the in-process gate with that database as the system of record).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
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

async function assertRowsMatch(t: TestApp, couponId: number, winners: Map<string, number>) {
  const view = await checkRows(t.container.database.db, couponId) // no user has two rows
  assert.equal(view.rows, QUANTITY)
  assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(QUANTITY))
  for (const [userId, rank] of view.ranks)
    assert.equal(winners.get(userId), rank, `row of ${userId}`)
  const stats = await t.app.inject({ method: 'GET', url: `/v1/coupons/${couponId}/stats` })
  assert.deepEqual(stats.json(), soldOutStats(couponId, QUANTITY))
}

for (const dialect of DIALECTS) {
  describe(`a storm on /v1 (${dialect})`, { skip: await skipUnlessDialect(dialect) }, () => {
    let t: TestApp
    let databaseUrl = ''
    before(async () => {
      databaseUrl = await createDatabaseUrl(dialect)
      t = await startApp({ databaseUrl })
      await t.listen()
    })
    after(async () => {
      await t?.close()
      if (databaseUrl) await dropDatabaseUrl(databaseUrl)
    })

    it(`${USERS * 2} parallel requests, ${USERS} users each twice, ${QUANTITY} coupons`, {
      timeout: 60_000,
    }, async () => {
      const couponId = await createCoupon(t.app, { totalQuantity: QUANTITY })
      const p = httpPool(t.url, CONNECTIONS)
      const everyone = users('user-', 1, USERS + 1)
      const answers = await storm(p, couponId, twice(everyone)).finally(() => p.close())

      const failures = answers.filter((a) => a.status === null)
      assert.deepEqual(failures.slice(0, 3), [], 'every request was answered')
      const wins = answers.filter((a) => a.status === 201)
      assert.equal(wins.length, QUANTITY)
      assert.deepEqual(sortedRanks(wins.map((w) => w.rank ?? 0)), oneTo(QUANTITY))
      const winners = winsOf(answers)
      assert.equal(winners.size, QUANTITY, 'no user won twice')
      for (const w of wins) assert.deepEqual(w.body, { couponId, userId: w.userId, rank: w.rank })

      const refusals = answers.filter((a) => a.status !== 201)
      assert.deepEqual(Object.keys(tally(refusals)).sort(), ['409 ALREADY_ISSUED', '409 SOLD_OUT'])
      for (const a of refusals) {
        // Only a winner is told ALREADY_ISSUED; a winner's other request is never a win.
        if (a.code === 'ALREADY_ISSUED') assert.ok(winners.has(a.userId), a.userId)
      }
      const alreadyIssued = refusals.filter((a) => a.code === 'ALREADY_ISSUED').length
      assert.ok(alreadyIssued <= QUANTITY)
      assert.equal(refusals.length, USERS * 2 - QUANTITY)

      await assertRowsMatch(t, couponId, winners)
    })
  })
}

describe('a storm on the compatibility route /v1/issue (sqlite)', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
    await t.listen()
  })
  after(async () => t?.close())

  it(`${USERS * 2} parallel requests, ${USERS} users each twice, ${QUANTITY} coupons`, {
    timeout: 60_000,
  }, async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: QUANTITY })
    const everyone = Array.from({ length: USERS }, (_, i) => 1_000_000 + i)
    const p = httpPool(t.url, CONNECTIONS)
    const answers = await storm(p, couponId, twice(everyone), {
      compatRoute: '/v1/issue',
    }).finally(() => p.close())

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
    await assertRowsMatch(t, couponId, ranks)
  })
})
