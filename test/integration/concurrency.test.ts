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
  compatIssue,
  issueAll,
  issueRows,
  oneTo,
  pool,
  sortedNumbers,
  tally,
} from '../helpers/embedded-storm.js'

const QUANTITY = 300
const USERS = 2500
const CONNECTIONS = 500

/** Every user twice, interleaved so a user's two requests are far apart or adjacent. */
function twice<T>(users: T[]): T[] {
  const all = [...users, ...users]
  // A fixed shuffle (no Math.random): reproducible, yet not in user order.
  for (let i = all.length - 1; i > 0; i--) {
    const j = (i * 7919 + 104_729) % (i + 1)
    const a = all[i] as T
    all[i] = all[j] as T
    all[j] = a
  }
  return all
}

async function assertRowsMatch(t: TestApp, couponId: number, winners: Map<string, number>) {
  const rows = await issueRows(t.container.database.db, couponId)
  assert.equal(rows.length, QUANTITY)
  assert.equal(new Set(rows.map((r) => r.userId)).size, QUANTITY, 'no user has two rows')
  assert.deepEqual(sortedNumbers(rows.map((r) => r.rank)), oneTo(QUANTITY))
  for (const r of rows) assert.equal(winners.get(r.userId), r.rank, `row of ${r.userId}`)
  const stats = await t.app.inject({ method: 'GET', url: `/v1/coupons/${couponId}/stats` })
  assert.deepEqual(stats.json(), {
    couponId,
    totalQuantity: QUANTITY,
    won: QUANTITY,
    persisted: QUANTITY,
    queued: 0,
    remaining: 0,
  })
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
      const users = Array.from({ length: USERS }, (_, i) => `user-${i + 1}`)
      const p = pool(t.url, CONNECTIONS)
      const answers = await issueAll(p, couponId, twice(users)).finally(() => p.close())

      const failures = answers.filter((a) => a.status === null)
      assert.deepEqual(failures.slice(0, 3), [], 'every request was answered')
      const wins = answers.filter((a) => a.status === 201)
      assert.equal(wins.length, QUANTITY)
      assert.deepEqual(sortedNumbers(wins.map((w) => w.rank ?? 0)), oneTo(QUANTITY))
      const winners = new Map(wins.map((w) => [w.userId, w.rank ?? 0]))
      assert.equal(winners.size, QUANTITY, 'no user won twice')
      for (const w of wins) assert.deepEqual(w.body, { couponId, userId: w.userId, rank: w.rank })

      const refusals = answers.filter((a) => a.status !== 201)
      assert.deepEqual([...tally(refusals.map((a) => `${a.status} ${a.code}`)).keys()].sort(), [
        '409 ALREADY_ISSUED',
        '409 SOLD_OUT',
      ])
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
    const users = Array.from({ length: USERS }, (_, i) => 1_000_000 + i)
    const p = pool(t.url, CONNECTIONS)
    const answers = await Promise.all(
      twice(users).map((u) => compatIssue(p, '/v1/issue', couponId, u)),
    ).finally(() => p.close())

    assert.ok(answers.every((a) => a.status === 200))
    const bodies = tally(answers.map((a) => JSON.stringify(a.body)))
    assert.equal(bodies.get('{"isSuccess":true}'), QUANTITY)
    const duplicate = JSON.stringify({ isSuccess: false, comment: '이미 발급된 쿠폰입니다.' })
    const soldOut = JSON.stringify({
      isSuccess: false,
      comment: '쿠폰 발급 수량이 유효하지 않습니다.',
    })
    assert.deepEqual([...bodies.keys()].sort(), ['{"isSuccess":true}', duplicate, soldOut].sort())
    assert.equal((bodies.get(duplicate) ?? 0) + (bodies.get(soldOut) ?? 0), USERS * 2 - QUANTITY)

    const winnerIds = new Set(
      answers
        .filter((a) => JSON.stringify(a.body) === '{"isSuccess":true}')
        .map((a) => String(a.userId)),
    )
    assert.equal(winnerIds.size, QUANTITY, 'no user won twice')
    const rows = await issueRows(t.container.database.db, couponId)
    assert.deepEqual(new Set(rows.map((r) => r.userId)), winnerIds)
    await assertRowsMatch(t, couponId, new Map(rows.map((r) => [r.userId, r.rank])))
  })
})
