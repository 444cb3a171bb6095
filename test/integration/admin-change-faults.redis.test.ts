/**
 * An admin change (PATCH) whose database write fails after the gate was told,
 * while a storm goes on (Redis mode, PostgreSQL). A trigger of the test's own on
 * `coupons` holds a rules change for a while and then refuses it (or lets it
 * through); a TCP proxy in front of Redis takes the gate away between the commit
 * and the gate's update. Whatever fails, once the PATCH is answered the coupon
 * the API shows and the rules the gate holds agree, and no storm — during the
 * change or after — ever wins more than the database's quantity, or outside the
 * database's window.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { sql } from 'kysely'
import pg from 'pg'
import { admin, couponBody, createCoupon, HOUR, iso, patchCoupon } from '../helpers/app.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { steadyStorm, tally, waitFor, winsOf } from '../helpers/storm.js'

/** How long the trigger holds a rules change before it refuses (or lets) it. */
const HOLD_S = 2

/**
 * A trigger that holds every change of a coupon's rules for HOLD_S, then raises
 * (refuse) or lets it through (pass). The worker's no-op row lock passes at once.
 */
async function rulesTrigger(databaseUrl: string, action: 'refuse' | 'pass' | 'off') {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query('drop trigger if exists fc_test_rules on coupons')
    if (action === 'off') return
    await client.query(`
      create or replace function fc_test_rules() returns trigger language plpgsql as $$
      begin
        if new.total_quantity is distinct from old.total_quantity
           or new.date_issue_start is distinct from old.date_issue_start
           or new.date_issue_end is distinct from old.date_issue_end then
          perform pg_sleep(${HOLD_S});
          ${action === 'refuse' ? "raise exception 'the test refuses this change';" : ''}
        end if;
        return new;
      end $$`)
    await client.query(
      'create trigger fc_test_rules before update on coupons for each row execute function fc_test_rules()',
    )
  } finally {
    await client.end()
  }
}

async function couponOf(s: Service, couponId: number) {
  const res = await s.app.inject({ method: 'GET', url: `/v1/coupons/${couponId}` })
  assert.equal(res.statusCode, 200, res.body)
  return res.json() as { totalQuantity: number | null; issueStart: string; issueEnd: string }
}

const SUITE: RedisSuiteOptions = { proxy: 'redis' }

describe('an admin change that fails midway (Redis mode, PostgreSQL)', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)
  let s: Service

  before(async () => {
    s = await suite.start({ connections: 32 })
  })

  /** The gate's rules as the API shows them: total, start and end (epoch ms). */
  async function gateRules(couponId: number) {
    const [start, end, total] = await suite.redis.hmget(
      suite.keys.coupon(couponId).meta,
      'start',
      'end',
      'total',
    )
    return { total: Number(total), start: Number(start), end: Number(end) }
  }

  async function assertAgree(couponId: number) {
    const c = await couponOf(s, couponId)
    assert.deepEqual(await gateRules(couponId), {
      total: c.totalQuantity ?? -1,
      start: Date.parse(c.issueStart),
      end: Date.parse(c.issueEnd),
    })
    return c
  }

  /** Whether the trigger holds a rules change now (its session in pg_sleep). */
  async function changeHeld(): Promise<boolean> {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event = 'PgSleep'`.execute(suite.db)
    return (rows[0]?.n ?? 0) > 0
  }

  /** A PATCH refused by the database after HOLD_S, with a storm all along. */
  async function failedChange(couponId: number, change: Record<string, unknown>, users: string) {
    await rulesTrigger(suite.databaseUrl, 'refuse')
    const storm = steadyStorm(s.pool, couponId, users, 16)
    try {
      const res = await patchCoupon(s.app, couponId, change)
      assert.equal(res.statusCode, 503, res.body)
      assert.equal(res.json().code, 'UNAVAILABLE')
    } finally {
      await rulesTrigger(suite.databaseUrl, 'off')
    }
    const answeredAt = storm.replies.length
    await waitFor(
      'the storm to go on after the answer',
      () => storm.replies.length > answeredAt + 50,
    )
    return winsOf(await storm.stop())
  }

  it('raising the quantity: the database refuses, the old quantity holds everywhere', async (tc) => {
    const couponId = await createCoupon(s.app, { totalQuantity: 100 })
    const during = await failedChange(couponId, { totalQuantity: 300 }, 'up')
    tc.diagnostic(`wins during the change: ${during.size}`)
    assert.ok(during.size <= 100, `${during.size} wins while the database said 100`)
    assert.equal((await assertAgree(couponId)).totalQuantity, 100)
    const later = winsOf(await steadyStorm(s.pool, couponId, 'up-later', 16).stop())
    const won = new Map([...during, ...later])
    const view = await suite.assertSettled(s.pool, couponId, won)
    assert.ok(view.rows <= 100, `${view.rows} rows for a quantity of 100`)
  })

  it('lowering the quantity: the database refuses, the old quantity holds everywhere', async () => {
    const couponId = await createCoupon(s.app, { totalQuantity: 300 })
    await rulesTrigger(suite.databaseUrl, 'refuse')
    let storm: ReturnType<typeof steadyStorm> | undefined
    try {
      let answered = false
      const patched = patchCoupon(s.app, couponId, { totalQuantity: 100 }).finally(() => {
        answered = true
      })
      await waitFor('the trigger to hold the change', changeHeld)
      const running = steadyStorm(s.pool, couponId, 'down', 16)
      storm = running
      await waitFor('the storm to be answered meanwhile', () => running.replies.length >= 50)
      assert.equal(answered, false, 'the change was still in flight')
      // In flight: the gate already holds the lower quantity, and keeps to it.
      assert.equal((await gateRules(couponId)).total, 100)
      assert.ok((await suite.redis.hlen(suite.keys.coupon(couponId).users)) <= 100)
      const res = await patched
      assert.equal(res.statusCode, 503, res.body)
    } finally {
      await rulesTrigger(suite.databaseUrl, 'off')
    }
    // (stopped after the answer: by then the old quantity is back in force)
    const during = winsOf((await storm?.stop()) ?? [])
    assert.equal((await assertAgree(couponId)).totalQuantity, 300)
    const later = steadyStorm(s.pool, couponId, 'down-later', 16)
    await waitFor('sold out', async () => later.replies.some((r) => r.code === 'SOLD_OUT'))
    const won = new Map([...during, ...winsOf(await later.stop())])
    assert.equal(won.size, 300)
    const view = await suite.assertSettled(s.pool, couponId, won)
    assert.equal(view.rows, 300)
  })

  it('opening the window: the database refuses, nobody wins before the recorded start', async (tc) => {
    const start = Date.now() + HOUR
    const couponId = await createCoupon(s.app, {
      totalQuantity: 100,
      issueStart: iso(start),
      issueEnd: iso(start + HOUR),
    })
    const storm = steadyStorm(s.pool, couponId, 'early', 16)
    await rulesTrigger(suite.databaseUrl, 'refuse')
    try {
      const res = await patchCoupon(s.app, couponId, { issueStart: iso(Date.now() - 60_000) })
      assert.equal(res.statusCode, 503, res.body)
    } finally {
      await rulesTrigger(suite.databaseUrl, 'off')
    }
    const replies = await storm.stop()
    tc.diagnostic(JSON.stringify(tally(replies)))
    assert.equal(winsOf(replies).size, 0, 'a win before the window the database holds')
    assert.equal(Date.parse((await assertAgree(couponId)).issueStart), start)
  })

  it('a coupon created while Redis is unreachable: 503, and nothing is created', async () => {
    const list = async () =>
      (await s.app.inject({ method: 'GET', url: '/v1/coupons', headers: admin })).json().items
        .length as number
    const before = await list()
    await suite.proxy.cut()
    try {
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/coupons',
        headers: admin,
        payload: couponBody(),
      })
      assert.equal(res.statusCode, 503, res.body)
      assert.equal(res.json().code, 'UNAVAILABLE')
    } finally {
      await suite.proxy.restore()
    }
    assert.equal(await list(), before, 'no coupon without a clean gate')
    // Redis back: created, with a gate of its own.
    await waitFor('a create to succeed', async () => {
      const couponId = await createCoupon(s.app, { totalQuantity: 5 }).catch(() => null)
      return couponId && (await gateRules(couponId)).total === 5
    })
  })

  it('the gate unreachable after the commit: 503, and the change is carried through', async () => {
    const couponId = await createCoupon(s.app, { totalQuantity: 100 })
    await rulesTrigger(suite.databaseUrl, 'pass')
    let res: Awaited<ReturnType<typeof patchCoupon>>
    try {
      const patched = patchCoupon(s.app, couponId, { totalQuantity: 200 })
      // The gate has the strictest rules; the row is being written.
      await waitFor('the trigger to hold the change', changeHeld)
      await suite.proxy.cut()
      res = await patched
    } finally {
      await rulesTrigger(suite.databaseUrl, 'off')
    }
    assert.equal(res.statusCode, 503, res.body)
    const row = await suite.db
      .selectFrom('coupons')
      .select('total_quantity')
      .where('id', '=', couponId)
      .executeTakeFirstOrThrow()
    assert.equal(row.total_quantity, 200, 'the change was committed')
    assert.ok((await gateRules(couponId)).total <= 100, 'meanwhile the gate is no looser')
    await suite.proxy.restore()
    await waitFor('the gate to take the recorded rules', async () => {
      return (await gateRules(couponId)).total === 200
    })
    await assertAgree(couponId)
    const storm = steadyStorm(s.pool, couponId, 'carried', 16)
    await waitFor('sold out', async () => storm.replies.some((r) => r.code === 'SOLD_OUT'))
    const won = winsOf(await storm.stop())
    assert.equal(won.size, 200)
    await suite.assertSettled(s.pool, couponId, won)
  })
})
