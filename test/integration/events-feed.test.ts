/**
 * The events feed, on both modes and every dialect: a storm of wins, uses and
 * cancels while a reader pages `GET /v1/events?after=…&wait=1` at the same
 * time. Then:
 * - the reader saw each event exactly once, in increasing id order, and a read
 *   from after=0 afterwards yields the very same list (the concurrent reader
 *   skipped nothing that committed late);
 * - the events match the rows: one coupon.issued per coupon_issues row (its
 *   user and rank), one coupon.used per spend, one coupon.use_cancelled per
 *   give-back, one coupon.sold_out;
 * - the feed's refusals: no token, limit/after/wait out of range.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Pool } from 'undici'
import type { FeedEvent } from '../../src/events/feed.js'
import { admin, createCoupon, service } from '../helpers/app.js'
import { DIALECTS } from '../helpers/databases.js'
import { embedded, redisMode } from '../helpers/modes.js'
import { checkRows, storm, users, waitDrained } from '../helpers/storm.js'
import { spendOver } from '../helpers/use.js'
import { waitFor } from '../helpers/wait.js'

const QUANTITY = 300
const USERS = 600
const SPENT = 60
const CANCELLED = 20

const MODES = [...DIALECTS.map(embedded), ...DIALECTS.map((d) => redisMode(d))]

async function getFeed(pool: Pool, query: string) {
  const res = await pool.request({ method: 'GET', path: `/v1/events?${query}`, headers: admin })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

/** Pages the feed until stopped, as a consumer would. */
function reader(pool: Pool) {
  const seen: FeedEvent[] = []
  let stopped = false
  let after = 0
  const done = (async () => {
    while (!stopped) {
      const { status, body } = await getFeed(pool, `after=${after}&limit=37&wait=1`)
      assert.equal(status, 200, JSON.stringify(body))
      const items = body.items as FeedEvent[]
      seen.push(...items)
      assert.equal(body.next, items.at(-1)?.id ?? after)
      after = body.next as number
    }
  })()
  return {
    seen,
    async stop() {
      stopped = true
      await done
    },
  }
}

async function readAll(pool: Pool): Promise<FeedEvent[]> {
  const all: FeedEvent[] = []
  let after = 0
  for (;;) {
    const { body } = await getFeed(pool, `after=${after}&limit=1000`)
    const items = body.items as FeedEvent[]
    if (items.length === 0) return all
    all.push(...items)
    after = body.next as number
  }
}

for (const mode of MODES) {
  describe(`events feed (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()

    it('a storm of wins, uses and cancels: each event once, in order, none skipped', {
      timeout: 180_000,
    }, async (t) => {
      const s = await suite.start({ env: { EVENTS_TICK_MS: '20' } }, t)
      s.container.pump.start()
      const id = await createCoupon(s.app, { totalQuantity: QUANTITY })
      const live = reader(s.pool)
      const replies = await storm(s.pool, id, users('u', 0, USERS))
      const winners = replies.filter((r) => r.status === 201).map((r) => r.userId)
      assert.equal(winners.length, QUANTITY)
      // Spends and give-backs while wins are still being persisted (Redis mode).
      const spenders = winners.slice(0, SPENT)
      const spends = await Promise.all(spenders.map((u) => spendOver(s.pool, id, u, `o-${u}`)))
      for (const r of spends) assert.equal(r.status, 200, JSON.stringify(r.body))
      const cancels = await Promise.all(
        spenders.slice(0, CANCELLED).map(async (u) => {
          const res = await s.pool.request({
            method: 'DELETE',
            path: `/v1/coupons/${id}/issues/${u}/use?orderId=o-${u}`,
            headers: service,
          })
          await res.body.dump()
          return res.statusCode
        }),
      )
      for (const c of cancels) assert.equal(c, 200)
      await waitDrained(s.pool, id, 60_000)
      const expected = QUANTITY + SPENT + CANCELLED + 1
      await waitFor(
        `the reader to see ${expected} events`,
        () => live.seen.filter((e) => e.data.couponId === id).length >= expected,
        60_000,
      )
      await live.stop()

      // Exactly once, in order, and the same as a read from 0 afterwards.
      const ids = live.seen.map((e) => e.id)
      for (let i = 1; i < ids.length; i++) {
        assert.ok(Number(ids[i - 1]) < Number(ids[i]), `ids ascend at ${i}`)
      }
      const again = await readAll(s.pool)
      assert.deepEqual(again, live.seen)

      // Against the rows.
      const mine = again.filter((e) => e.data.couponId === id)
      const issued = mine.filter((e) => e.type === 'coupon.issued')
      const view = await checkRows(suite.db, id)
      assert.equal(issued.length, QUANTITY)
      const rows = await suite.db
        .selectFrom('coupon_issues')
        .select(['user_id', 'rank', 'order_id'])
        .where('coupon_id', '=', id)
        .execute()
      assert.equal(rows.length, view.rows)
      assert.deepEqual(
        new Map(issued.map((e) => [e.data.userId, e.data.rank])),
        new Map(rows.map((r) => [r.user_id, Number(r.rank)])),
      )
      for (const e of issued) {
        assert.match(String(e.data.issuedAt), /Z$/)
        assert.match(e.createdAt, /^\d{4}-\d\d-\d\dT.*Z$/)
      }
      const used = mine.filter((e) => e.type === 'coupon.used')
      assert.deepEqual(new Set(used.map((e) => e.data.userId)), new Set(spenders))
      for (const e of used) assert.equal(e.data.orderId, `o-${e.data.userId}`)
      const cancelled = mine.filter((e) => e.type === 'coupon.use_cancelled')
      assert.deepEqual(
        new Set(cancelled.map((e) => e.data.userId)),
        new Set(spenders.slice(0, CANCELLED)),
      )
      // Per user: issued, then used, then cancelled.
      const positions = new Map(mine.map((e, i) => [`${e.type} ${e.data.userId}`, i]))
      const position = (key: string) => positions.get(key) ?? Number.NaN
      for (const u of spenders) {
        assert.ok(position(`coupon.issued ${u}`) < position(`coupon.used ${u}`))
      }
      for (const u of spenders.slice(0, CANCELLED)) {
        assert.ok(position(`coupon.used ${u}`) < position(`coupon.use_cancelled ${u}`))
      }
      const soldOut = mine.filter((e) => e.type === 'coupon.sold_out')
      assert.equal(soldOut.length, 1)
      assert.equal(soldOut[0]?.data.totalQuantity, QUANTITY)
      const stillUsed = rows.filter((r) => r.order_id !== null).length
      assert.equal(stillUsed, SPENT - CANCELLED)
    })

    it('refuses bad feed requests and callers without the admin token', async (t) => {
      const s = await suite.start({}, t)
      const anon = await s.pool.request({ method: 'GET', path: '/v1/events' })
      assert.equal(anon.statusCode, 401)
      assert.equal(((await anon.body.json()) as { code: string }).code, 'UNAUTHORIZED')
      for (const q of ['limit=0', 'limit=1001', 'wait=31', 'after=-1', 'after=x', 'limit=5&x=1']) {
        const { status, body } = await getFeed(s.pool, q)
        assert.equal(status, 400, q)
        assert.equal(body.code, 'VALIDATION_FAILED', q)
      }
    })

    it('a long poll wakes when an event arrives, and times out empty', {
      timeout: 60_000,
    }, async (t) => {
      const s = await suite.start({ env: { EVENTS_TICK_MS: '20' } }, t)
      s.container.pump.start()
      const id = await createCoupon(s.app, { totalQuantity: 5 })
      const head = (await readAll(s.pool)).at(-1)?.id ?? 0
      const started = Date.now()
      const empty = await getFeed(s.pool, `after=${head}&wait=1`)
      assert.deepEqual(empty.body, { items: [], next: head })
      assert.ok(Date.now() - started >= 900, 'waited about a second')
      const polled = getFeed(s.pool, `after=${head}&wait=20`)
      await new Promise((r) => setTimeout(r, 200))
      const asked = Date.now()
      await storm(s.pool, id, ['late'])
      const { body } = await polled
      assert.equal((body.items as FeedEvent[])[0]?.type, 'coupon.issued')
      assert.ok(Date.now() - asked < 10_000, 'woken long before the wait was over')
    })

    it('a long poll on another process wakes through Redis', {
      skip: mode.mode === 'embedded' && 'embedded mode is one process',
      timeout: 60_000,
    }, async (t) => {
      const pumping = await suite.start({ env: { EVENTS_TICK_MS: '20' } }, t)
      const polled = await suite.start({}, t)
      pumping.container.pump.start()
      const id = await createCoupon(pumping.app, { totalQuantity: 5 })
      await waitFor('the pump to hold the lease', () => pumping.container.pump.holding)
      const head = (await readAll(polled.pool)).at(-1)?.id ?? 0
      const poll = getFeed(polled.pool, `after=${head}&wait=20`)
      await new Promise((r) => setTimeout(r, 300))
      const asked = Date.now()
      await storm(pumping.pool, id, ['elsewhere'])
      const { body } = await poll
      assert.equal((body.items as FeedEvent[])[0]?.data.userId, 'elsewhere')
      assert.ok(Date.now() - asked < 10_000, 'woken long before the wait was over')
    })
  })
}
