/**
 * The opening draw over real sockets, in both modes and on every database:
 * thousands of concurrent entries (every user twice) answered 202 exactly once
 * per user; every 202 user in the published entrant list; at drawAt the draw,
 * whose winners are the first n of the documented shuffle, ranks 1..n, every
 * one persisted; losers told NOT_DRAWN; a PATCH of drawAt after it 409
 * DRAW_DONE; the original's routes answer an entry a success and a loser that
 * the quantity is gone; and with fewer entrants than coupons, the rest first-come.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Pool } from 'undici'
import { drawWinners, pseudonymOf, seedFromHex } from '../../src/draw/shuffle.js'
import { verifyDraw } from '../../src/draw/verify.js'
import { compatComments } from '../../src/http/issue-endpoint.js'
import { admin, createCoupon, iso } from '../helpers/app.js'
import { DIALECTS } from '../helpers/databases.js'
import { servedDraw } from '../helpers/draws.js'
import { assertInvariants } from '../helpers/invariants.js'
import { embedded, redisMode } from '../helpers/modes.js'
import type { Service } from '../helpers/redis-suite.js'
import {
  checkRows,
  issueOnce,
  oneTo,
  sortedRanks,
  storm,
  tally,
  twiceShuffled,
  users,
  waitDrained,
  waitFor,
} from '../helpers/storm.js'

const QUANTITY = 100
const ENTRANTS = 2000
const CONNECTIONS = 300
/** drawAt, far enough for the storm of entries on a busy machine; then moved closer */
const ENTRY_MS = 120_000

const twice = <T>(ids: T[]) => twiceShuffled(ids, (i) => (i * 7919 + 104_729) % (i + 1))

async function get(pool: Pool, path: string, headers: Record<string, string> = {}) {
  const res = await pool.request({ method: 'GET', path, headers })
  return { status: res.statusCode, text: await res.body.text() }
}

async function patch(pool: Pool, couponId: number, body: unknown) {
  const res = await pool.request({
    method: 'PATCH',
    path: `/v1/coupons/${couponId}`,
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

/** A coupon open from now on whose draw is far off, for drawSoon to bring close. */
function openWithDrawLater(s: Service, totalQuantity: number): Promise<number> {
  const now = Date.now()
  return createCoupon(s, {
    totalQuantity,
    issueStart: iso(now - 1000),
    drawAt: iso(now + ENTRY_MS),
    issueEnd: iso(now + 600_000),
  })
}

/** Once the entries are in: drawAt moved to half a second from now. */
async function drawSoon(pool: Pool, couponId: number) {
  const moved = await patch(pool, couponId, { drawAt: iso(Date.now() + 500) })
  assert.equal(moved.status, 200)
}

const MODES = [...DIALECTS.map(embedded), redisMode('postgres'), redisMode('mysql')]

for (const mode of MODES) {
  describe(`the opening draw (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()
    let s: Service
    before(async () => {
      s = await suite.start({ connections: CONNECTIONS })
    })

    it(`${ENTRANTS} users enter twice each, ${QUANTITY} are drawn, the rest NOT_DRAWN`, {
      timeout: 120_000,
    }, async () => {
      const now = Date.now()
      let drawAt = now + ENTRY_MS
      const couponId = await createCoupon(s, {
        totalQuantity: QUANTITY,
        issueStart: iso(now - 1000),
        drawAt: iso(drawAt),
        issueEnd: iso(now + 600_000),
      })
      const coupon = JSON.parse((await get(s.pool, `/v1/coupons/${couponId}`)).text) as {
        drawAt: string
        drawCommitment: string
      }
      assert.equal(coupon.drawAt, iso(drawAt))
      assert.match(coupon.drawCommitment, /^[0-9a-f]{64}$/)
      assert.equal((await get(s.pool, `/v1/coupons/${couponId}/draw`)).status, 404)

      const everyone = users('entrant-', 0, ENTRANTS)
      const answers = await storm(s.pool, couponId, twice(everyone))
      assert.deepEqual(
        tally(answers, (a) => String(a.status)),
        { '202': ENTRANTS * 2 },
      )
      for (const a of answers)
        assert.deepEqual(a.body, {
          couponId,
          userId: a.userId,
          state: 'ENTERED',
          drawAt: iso(drawAt),
        })
      const entered = await get(s.pool, `/v1/coupons/${couponId}/issues/entrant-7`)
      assert.equal(entered.status, 200)
      assert.deepEqual(JSON.parse(entered.text), {
        couponId,
        userId: 'entrant-7',
        state: 'ENTERED',
        drawAt: iso(drawAt),
      })
      // drawAt moved closer by PATCH: the commitment stays.
      drawAt = Date.now() + 1000
      const moved = await patch(s.pool, couponId, { drawAt: iso(drawAt) })
      assert.equal(moved.status, 200, JSON.stringify(moved.body))
      assert.equal(moved.body.drawCommitment, coupon.drawCommitment)
      assert.equal(moved.body.drawAt, iso(drawAt))

      const served = await servedDraw((path) => get(s.pool, path), couponId, 60_000)
      const { record } = served
      const seed = seedFromHex(record.seed)
      assert.equal(record.commitment, coupon.drawCommitment)
      assert.equal(record.entrants, ENTRANTS)
      assert.equal(record.quantity, QUANTITY)
      // Every 202 user is in the list, and nobody else.
      const byPseudonym = new Map(everyone.map((u) => [pseudonymOf(seed, u), u]))
      assert.deepEqual(served.entrants, [...byPseudonym.keys()].sort())
      // The winners are the documented shuffle's first n; verify-draw agrees.
      assert.deepEqual(record.winners, drawWinners(seed, served.entrants, QUANTITY).winners)
      const verification = verifyDraw({ record, entrantList: served.entrantList })
      assert.ok(verification.ok, JSON.stringify(verification.checks))

      const winners = new Map(record.winners.map((p, i) => [byPseudonym.get(p) as string, i + 1]))
      await waitDrained(s.pool, couponId)
      const view = await assertInvariants(suite.databaseUrl, couponId, winners)
      assert.equal(view.rows, QUANTITY)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(QUANTITY))
      assert.deepEqual(view.ranks, winners)

      for (const [userId, rank] of [...winners].slice(0, 5)) {
        const status = JSON.parse(
          (await get(s.pool, `/v1/coupons/${couponId}/issues/${userId}`)).text,
        )
        assert.equal(status.rank, rank)
        assert.equal(status.state, 'ISSUED')
        const again = await issueOnce(s.pool, couponId, userId)
        assert.equal(again.code, 'ALREADY_ISSUED')
      }
      const losers = everyone.filter((u) => !winners.has(u)).slice(0, 20)
      for (const userId of losers) {
        const status = await get(s.pool, `/v1/coupons/${couponId}/issues/${userId}`)
        assert.equal(status.status, 404)
        assert.equal(JSON.parse(status.text).code, 'NOT_DRAWN')
        const again = await issueOnce(s.pool, couponId, userId)
        assert.equal(again.status, 404)
        assert.equal(again.code, 'NOT_DRAWN')
      }
      const stranger = await issueOnce(s.pool, couponId, 'never-entered')
      assert.equal(stranger.code, 'SOLD_OUT')
      const notEntered = await get(s.pool, `/v1/coupons/${couponId}/issues/never-entered`)
      assert.equal(JSON.parse(notEntered.text).code, 'NOT_ISSUED')

      const late = await patch(s.pool, couponId, { drawAt: iso(Date.now() + 60_000) })
      assert.equal(late.status, 409)
      assert.equal(late.body.code, 'DRAW_DONE')
      // The admin's list of user ids is the same order as the pseudonyms'.
      const plain = await get(s.pool, `/v1/coupons/${couponId}/draw/entrants?as=userIds`, admin)
      assert.deepEqual(
        plain.text.slice(0, -1).split('\n'),
        served.entrants.map((p) => byPseudonym.get(p)),
      )
      const refused = await get(s.pool, `/v1/coupons/${couponId}/draw/entrants?as=userIds`)
      assert.equal(refused.status, 401)

      // The feed says the draw is done, once, with its winners' count.
      s.container.pump.start()
      const done = await waitFor('the draw_done event', async () => {
        const feed = JSON.parse((await get(s.pool, '/v1/events?after=0&limit=1000', admin)).text)
        const mine = (
          feed.items as { type: string; data: { couponId: number; winners?: number } }[]
        ).filter((e) => e.type === 'coupon.draw_done' && e.data.couponId === couponId)
        return mine.length > 0 ? mine : null
      })
      assert.deepEqual(
        done.map((e) => e.data.winners),
        [QUANTITY],
      )
    })

    it('Redis losing the coupon mid-entries: the rebuilt gate keeps it a draw', {
      skip: mode.mode === 'redis' ? false : 'Redis mode only',
      timeout: 60_000,
    }, async () => {
      const couponId = await openWithDrawLater(s, 5)
      const before = await storm(s.pool, couponId, users('lost-', 0, 20))
      assert.deepEqual(
        tally(before, (a) => String(a.status)),
        { '202': 20 },
      )
      const redisSuite = suite.redis
      assert.ok(redisSuite)
      const k = redisSuite.keys.coupon(couponId)
      // Every key of the coupon gone (a Redis restarted without persistence).
      await redisSuite.redis.del(k.meta, k.users, k.holes, k.stream, k.draw, k.entries)
      const afterLoss = await storm(s.pool, couponId, users('kept-', 0, 20))
      assert.deepEqual(
        tally(afterLoss, (a) => String(a.status)),
        { '202': 20 },
      )
      await drawSoon(s.pool, couponId)
      const { record } = await servedDraw((path) => get(s.pool, path), couponId)
      assert.equal(record.winners.length, 5)
      await waitDrained(s.pool, couponId)
      const view = await checkRows(suite.db, couponId)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(5))
      for (const u of view.ranks.keys()) assert.ok(u.startsWith('kept-'), u)
    })

    it('Redis losing a drawn coupon: the rebuilt gate still tells its losers NOT_DRAWN', {
      skip: mode.mode === 'redis' ? false : 'Redis mode only',
      timeout: 60_000,
    }, async () => {
      const couponId = await openWithDrawLater(s, 3)
      const entrants = users('drawn-', 0, 12)
      await storm(s.pool, couponId, entrants)
      await drawSoon(s.pool, couponId)
      const { record } = await servedDraw((path) => get(s.pool, path), couponId)
      assert.equal(record.winners.length, 3)
      await waitDrained(s.pool, couponId)
      const winners = new Set((await checkRows(suite.db, couponId)).ranks.keys())
      const redisSuite = suite.redis
      assert.ok(redisSuite)
      const k = redisSuite.keys.coupon(couponId)
      await redisSuite.redis.del(k.meta, k.users, k.holes, k.stream, k.draw, k.entries)
      for (const userId of entrants) {
        const status = await get(s.pool, `/v1/coupons/${couponId}/issues/${userId}`)
        const again = await issueOnce(s.pool, couponId, userId)
        if (winners.has(userId)) {
          assert.equal(status.status, 200, status.text)
          assert.equal(again.code, 'ALREADY_ISSUED')
        } else {
          assert.equal(JSON.parse(status.text).code, 'NOT_DRAWN', `${userId}: ${status.text}`)
          assert.equal(again.code, 'NOT_DRAWN', userId)
        }
      }
      assert.equal((await issueOnce(s.pool, couponId, 'never-entered')).code, 'SOLD_OUT')
    })

    it("the original's routes: an entry is a success, a loser hears the quantity is gone", {
      timeout: 60_000,
    }, async () => {
      const couponId = await openWithDrawLater(s, 1)
      const routes = ['/v1/issue', '/v1/issue-async', '/v2/issue-async']
      // Each route enters its user, twice: one entry each, a success each time.
      const answers = await Promise.all(
        [...routes, ...routes].map((route, i) =>
          issueOnce(s.pool, couponId, 880 + (i % 3), { compatRoute: route }),
        ),
      )
      for (const a of answers) assert.deepEqual([a.status, a.body], [200, { isSuccess: true }])
      // The cockpit: the draw's phase and its entrants, live (figures are a second old at most).
      const drawOf = async () => {
        const overview = JSON.parse((await get(s.pool, '/v1/admin/overview', admin)).text) as {
          coupons: { id: number; draw: Record<string, unknown> | null }[]
        }
        return overview.coupons.find((c) => c.id === couponId)?.draw
      }
      const entering = await waitFor('the entrants counted', async () => {
        const draw = await drawOf()
        return draw?.entrants === 3 ? draw : null
      })
      assert.equal(entering.phase, 'entries')
      assert.equal(entering.winners, null)
      await drawSoon(s.pool, couponId)
      const { record } = await servedDraw((path) => get(s.pool, path), couponId)
      assert.equal(record.entrants, 3)
      assert.equal(record.winners.length, 1)
      const seed = seedFromHex(record.seed)
      const winner = ['880', '881', '882'].find((u) => pseudonymOf(seed, u) === record.winners[0])
      assert.ok(winner)
      const drawn = await waitFor('the draw shown drawn', async () => {
        const draw = await drawOf()
        return draw?.phase === 'drawn' ? draw : null
      })
      assert.deepEqual([drawn.entrants, drawn.winners], [3, 1])
      assert.equal(drawn.commitment, record.commitment)
      const metrics = (await get(s.pool, '/metrics')).text
      assert.match(
        metrics,
        new RegExp(`^firstcome_coupon_entrants\\{coupon="${couponId}"\\} 3$`, 'm'),
      )
      assert.match(
        metrics,
        new RegExp(`^firstcome_draw_overdue_seconds\\{coupon="${couponId}"\\} 0$`, 'm'),
      )
      for (const [i, userId] of ['880', '881', '882'].entries()) {
        const after = await issueOnce(s.pool, couponId, Number(userId), {
          compatRoute: routes[i] as string,
        })
        assert.equal(after.status, 200)
        assert.deepEqual(after.body, {
          isSuccess: false,
          comment: userId === winner ? compatComments.ALREADY_ISSUED : compatComments.SOLD_OUT,
        })
      }
    })

    it('with fewer entrants than coupons, every entrant wins and the rest goes first-come', {
      timeout: 60_000,
    }, async () => {
      const couponId = await openWithDrawLater(s, 30)
      const entrants = users('few-', 0, 9)
      assert.deepEqual(
        tally(await storm(s.pool, couponId, entrants), (a) => String(a.status)),
        { '202': 9 },
      )
      // The original's route: an entry is a success in its shape.
      const compat = await issueOnce(s.pool, couponId, 777, { compatRoute: '/v1/issue' })
      assert.deepEqual([compat.status, compat.body], [200, { isSuccess: true }])
      entrants.push('777')
      await drawSoon(s.pool, couponId)
      const { record } = await servedDraw((path) => get(s.pool, path), couponId)
      assert.equal(record.winners.length, 10)
      const rest = await storm(s.pool, couponId, users('late-', 0, 25))
      const ranks = rest.filter((a) => a.status === 201).map((a) => a.rank ?? 0)
      assert.deepEqual(sortedRanks(ranks), oneTo(30).slice(10))
      assert.equal(rest.filter((a) => a.code === 'SOLD_OUT').length, 5)
      await waitDrained(s.pool, couponId)
      const view = await checkRows(suite.db, couponId)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(30))
      for (const u of entrants) assert.ok((view.ranks.get(u) ?? 99) <= 10, u)
    })
  })
}
