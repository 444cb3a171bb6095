/**
 * Partner codes as the gate's limit, in either mode on every database (SPEC
 * "Partner codes"): a coupon with fewer codes than its quantity (or unlimited,
 * with codes) grants exactly as many wins as it holds codes, and each 201 carries
 * code number rank; codes uploaded during a storm raise the limit at once, and
 * the storm's next winners get them. No code is given twice, none is answered
 * without its code, and none is shown to another user or an anonymous caller.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Pool } from 'undici'
import { createCoupon, service } from '../helpers/app.js'
import { uploadCodes } from '../helpers/codes.js'
import { DIALECTS } from '../helpers/databases.js'
import { embedded, redisMode } from '../helpers/modes.js'
import {
  checkRows,
  getStats,
  type IssueReply,
  oneTo,
  sortedRanks,
  steadyStorm,
  storm,
  tally,
  users,
  waitDrained,
  waitFor,
} from '../helpers/storm.js'

const MODES = [...DIALECTS.map(embedded), redisMode('postgres'), redisMode('mysql')]

const codesOf = (prefix: string, from: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}-${String(from + i).padStart(5, '0')}`)

/**
 * The 201s of a storm: each with code number rank, no code or rank twice; answers
 * userId → code.
 */
function assertCodedWins(replies: readonly IssueReply[], codes: readonly string[]) {
  const byUser = new Map<string, string>()
  const given = new Set<string>()
  for (const r of replies) {
    if (r.status !== 201) continue
    const body = r.body as { rank: number; code?: string; userId: string }
    assert.equal(body.code, codes[body.rank - 1], `${r.userId}: rank ${body.rank}'s code`)
    assert.ok(!given.has(body.code as string), `code ${body.code} given twice`)
    given.add(body.code as string)
    byUser.set(r.userId, body.code as string)
  }
  return byUser
}

/** What a caller without a token, and a user who did not win, can read: no code. */
async function assertNotShown(app: FastifyInstance, couponId: number, winner: string) {
  const anonymous = await app.inject({ url: `/v1/coupons/${couponId}/issues/${winner}` })
  assert.equal(anonymous.statusCode, 200, anonymous.body)
  assert.equal('code' in anonymous.json(), false, anonymous.body)
  const loser = await app.inject({
    url: `/v1/coupons/${couponId}/issues/nobody-won-this`,
    headers: service,
  })
  assert.equal(loser.statusCode, 404, loser.body)
  const stats = await app.inject({ url: `/v1/coupons/${couponId}/stats` })
  assert.equal(stats.body.includes('CODE-'), false)
}

async function codeOf(app: FastifyInstance, couponId: number, userId: string) {
  const res = await app.inject({
    url: `/v1/coupons/${couponId}/issues/${userId}`,
    headers: service,
  })
  assert.equal(res.statusCode, 200, res.body)
  return res.json().code as string | null
}

async function assertRows(
  s: { app: FastifyInstance; pool: Pool },
  db: Parameters<typeof checkRows>[0],
  couponId: number,
  winners: Map<string, string>,
) {
  await waitDrained(s.pool, couponId)
  const view = await checkRows(db, couponId)
  assert.equal(view.rows, winners.size)
  assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(winners.size))
  // Once rows, each winner still reads the code its 201 carried.
  for (const [userId, code] of [...winners].slice(0, 20))
    assert.equal(await codeOf(s.app, couponId, userId), code, userId)
}

for (const mode of MODES) {
  describe(`partner codes as the limit (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()

    it('fewer codes than the quantity: wins stop at the codes, each 201 with code number rank', {
      timeout: 60_000,
    }, async (t) => {
      const s = await suite.start({ connections: 100 }, t)
      const couponId = await createCoupon(s.app, { totalQuantity: 200 })
      const codes = codesOf('CODE-A', 1, 60)
      assert.equal((await uploadCodes(s.app, couponId, { codes })).statusCode, 200)
      const stats = await getStats(s.pool, couponId)
      assert.equal(stats.codes, 60)
      assert.equal(stats.limit, 60)
      assert.equal(stats.remaining, 60)

      const replies = await storm(s.pool, couponId, users('a', 0, 400))
      assert.deepEqual(tally(replies), { '201': 60, '409 SOLD_OUT': 340 })
      for (const r of replies)
        if (r.status !== 201) assert.equal(JSON.stringify(r.body).includes('CODE-'), false)
      const winners = assertCodedWins(replies, codes)
      assert.equal(winners.size, 60)
      assert.equal((await getStats(s.pool, couponId)).remaining, 0)
      const [first] = winners.keys()
      await assertNotShown(s.app, couponId, first as string)
      await assertRows(s, suite.db, couponId, winners)
    })

    it('a first upload to a coupon with wins needs a code for each: fewer is 409 TOO_FEW_CODES', async (t) => {
      const s = await suite.start({}, t)
      const couponId = await createCoupon(s.app, { totalQuantity: 10 })
      const replies = await storm(s.pool, couponId, users('early', 0, 5))
      assert.deepEqual(tally(replies), { '201': 5 })
      const few = await uploadCodes(s.app, couponId, { codes: codesOf('CODE-F', 1, 3) })
      assert.equal(few.statusCode, 409, few.body)
      assert.equal(few.json().code, 'TOO_FEW_CODES')
      assert.equal((await getStats(s.pool, couponId)).codes, 0, 'nothing stored')
      const codes = codesOf('CODE-F', 1, 7)
      assert.equal((await uploadCodes(s.app, couponId, { codes })).statusCode, 200)
      // The wins made before get codes 1..5 by rank; the next two, 6 and 7.
      for (const r of replies) {
        const { rank } = r.body as { rank: number }
        assert.equal(await codeOf(s.app, couponId, r.userId), codes[rank - 1], r.userId)
      }
      const later = await storm(s.pool, couponId, users('late', 0, 4))
      assert.deepEqual(tally(later), { '201': 2, '409 SOLD_OUT': 2 })
    })

    it('an unlimited coupon with codes: the codes are its limit', async (t) => {
      const s = await suite.start({}, t)
      const couponId = await createCoupon(s.app, { totalQuantity: null })
      const codes = codesOf('CODE-U', 1, 10)
      assert.equal((await uploadCodes(s.app, couponId, { codes })).statusCode, 200)
      const replies = await storm(s.pool, couponId, users('u', 0, 40))
      assert.deepEqual(tally(replies), { '201': 10, '409 SOLD_OUT': 30 })
      assertCodedWins(replies, codes)
      const stats = await getStats(s.pool, couponId)
      assert.equal(stats.totalQuantity, null)
      assert.equal(stats.limit, 10)
    })

    it('codes uploaded mid-storm raise the limit at once; the next winners get them', {
      timeout: 240_000,
    }, async (t) => {
      const s = await suite.start({ connections: 32 }, t)
      const couponId = await createCoupon(s.app, { totalQuantity: 500 })
      const codes = codesOf('CODE-M', 1, 150)
      assert.equal(
        (await uploadCodes(s.app, couponId, { codes: codes.slice(0, 50) })).statusCode,
        200,
      )
      let soldOut = 0
      const running = steadyStorm(s.pool, couponId, 'm', 16, (r) => {
        if (r.code === 'SOLD_OUT') soldOut++
      })
      try {
        // Sold out at 50 while the storm runs; then two more uploads, the storm going on.
        // Each win is written before it is answered: when the suite's other files
        // load MariaDB with a million rows, 50 take far longer than alone.
        const STORM_WAIT_MS = 60_000
        await waitFor('sold out at the first codes', async () => soldOut >= 50, STORM_WAIT_MS)
        for (const from of [50, 100]) {
          const res = await uploadCodes(s.app, couponId, { codes: codes.slice(from, from + 50) })
          assert.equal(res.statusCode, 200, res.body)
          assert.equal(res.json().codes, from + 50)
          const seen = soldOut
          await waitFor(
            `wins past ${from}`,
            async () => {
              const won = running.replies.filter((r) => r.status === 201).length
              return won >= from + 50 && soldOut > seen + 50
            },
            STORM_WAIT_MS,
          )
        }
      } finally {
        await running.stop()
      }
      const replies = running.replies
      assert.equal(replies.filter((r) => r.status === null).length, 0)
      const winners = assertCodedWins(replies, codes)
      assert.equal(winners.size, 150)
      const stats = await getStats(s.pool, couponId)
      assert.equal(stats.limit, 150)
      assert.equal(stats.won, 150)
      await assertRows(s, suite.db, couponId, winners)
    })

    it('a large upload while wins are written holds none of them back with an error', {
      timeout: 240_000,
    }, async (t) => {
      // The shortest row lock wait MySQL takes (1 s): an upload that kept the
      // wins' commit waiting for it all along would show at once, not only on a
      // loaded machine.
      const s = await suite.start({ connections: 32, env: { DB_LOCK_TIMEOUT_MS: '1000' } }, t)
      const couponId = await createCoupon(s.app, { totalQuantity: 1_000_000 })
      assert.equal((await uploadCodes(s.app, couponId, { generate: 20_000 })).statusCode, 200)
      const running = steadyStorm(s.pool, couponId, 'up', 16)
      try {
        await waitFor('wins being written', async () => running.replies.length >= 200, 60_000)
        const res = await uploadCodes(s.app, couponId, { generate: 300_000 })
        assert.equal(res.statusCode, 200, res.body)
        assert.equal(res.json().codes, 320_000)
        const seen = running.replies.length
        await waitFor('wins after the upload', async () => running.replies.length >= seen + 200)
      } finally {
        await running.stop()
      }
      // Every request won (a 503 would be a win left unanswered while the upload ran).
      assert.deepEqual(tally(running.replies), { '201': running.replies.length })
    })

    it('a gate rebuilt after Redis lost the coupon holds its codes again', {
      skip: mode.mode === 'redis' ? false : 'Redis mode only',
    }, async (t) => {
      const s = await suite.start({}, t)
      const redis = suite.redis
      assert.ok(redis)
      const couponId = await createCoupon(s.app, { totalQuantity: 100 })
      const codes = codesOf('CODE-R', 1, 30)
      assert.equal((await uploadCodes(s.app, couponId, { codes })).statusCode, 200)
      const first = await storm(s.pool, couponId, users('r', 0, 10))
      await waitDrained(s.pool, couponId)
      const k = redis.keys.coupon(couponId)
      assert.equal(await redis.redis.hlen(k.codes), 30)
      // Everything the coupon had in Redis, gone (a restart without persistence).
      await redis.redis.del(k.meta, k.users, k.holes, k.stream, k.codes)
      const second = await storm(s.pool, couponId, users('s', 0, 40))
      assert.deepEqual(tally(second), { '201': 20, '409 SOLD_OUT': 20 })
      assert.equal(await redis.redis.hlen(k.codes), 30)
      const winners = assertCodedWins([...first, ...second], codes)
      assert.equal(winners.size, 30)
      await assertRows(s, suite.db, couponId, winners)
    })
  })
}
