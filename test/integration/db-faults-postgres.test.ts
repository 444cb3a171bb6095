// test-order: first — one of the longest files: started first, so that the run does not end waiting for it
/**
 * Database faults on PostgreSQL answered as what they are (embedded mode, a test
 * database of its own): read-only (`default_transaction_read_only`, SQLSTATE
 * 25006), disk full (a tablespace on a small tmpfs, 53100), a statement timeout
 * (57014) and lost connections. Every write route answers 503 with Retry-After
 * while the fault lasts, never 500; readiness names the database while writes
 * are refused for want of room or permission; afterwards every win is a row and
 * the invariants hold.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { resetReadOnly, setReadOnly } from '../helpers/db-faults.js'
import { type PgFullDisk, pgTableOnSmallDisk, skipUnlessMount } from '../helpers/disk-faults.js'
import {
  assertUnavailable,
  checkout,
  issueWithKey,
  otherWrites,
  readiness,
  recovered,
} from '../helpers/fault-routes.js'
import { assertInvariants } from '../helpers/invariants.js'
import { keyedStorm } from '../helpers/keyed-storm.js'
import { tally, users, winsOf } from '../helpers/storm.js'

const STATEMENT_TIMEOUT_MS = 1000

describe('database faults on PostgreSQL (embedded mode)', {
  skip: (await skipUnlessDialect('postgres')) || (await skipUnlessMount()),
}, () => {
  let url = ''
  let t: TestApp
  let disk: PgFullDisk | undefined
  before(async () => {
    url = await createDatabaseUrl('postgres')
    t = await startApp({
      databaseUrl: url,
      env: {
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        DB_LOCK_TIMEOUT_MS: '20000',
      },
    })
  })
  after(async () => {
    await t?.close()
    if (url) await dropDatabaseUrl(url)
    await disk?.release()
  })

  it('read-only: every write route answers 503 with Retry-After, reads answer, nothing is lost', async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: 100 })
    const before = await issueWithKey(t, couponId, 'spender', 'ro-spender')
    assert.equal(before.status, 201)
    await setReadOnly(url)
    let during: Awaited<ReturnType<typeof issueWithKey>>
    try {
      during = await issueWithKey(t, couponId, 'ro-user', 'ro-key')
      assertUnavailable([during, ...(await otherWrites(t, couponId, 'spender'))], 'read-only')
      assert.equal((await checkout(t, couponId, 'spender')).status, 503, 'a retry too')
      const ready = await readiness(t)
      assert.equal(ready.status, 503, 'readiness names the database while it refuses writes')
      const read = await t.app.inject({ method: 'GET', url: `/v1/coupons/${couponId}` })
      assert.equal(read.statusCode, 200, 'reads still answer')
    } finally {
      await resetReadOnly(url)
    }
    await recovered(t)
    const retried = await issueWithKey(t, couponId, 'ro-user', 'ro-key')
    assert.equal(retried.status, 201, 'the win held through the fault is the retry’s')
    assert.equal((await checkout(t, couponId, 'spender')).status, 200)
    await assertInvariants(
      url,
      couponId,
      new Map([
        ['spender', before.rank],
        ['ro-user', retried.rank],
      ]),
    )
  })

  it('disk full: 503 with Retry-After until there is room, then every win is a row', {
    timeout: 120_000,
  }, async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: 100_000 })
    const spenders = users('df-spender', 0, 300)
    const spent = winsOf(await keyedStorm(await t.listen(), couponId, spenders))
    assert.equal(spent.size, spenders.length)
    disk = await pgTableOnSmallDisk(url, 256)
    // Wins until the table's disk is full; from then on the wins wait, answered 503.
    const everyone: string[] = []
    let replies: Awaited<ReturnType<typeof keyedStorm>> = []
    for (let wave = 0; !replies.some((r) => r.status === 503); wave++) {
      assert.ok(wave < 20, 'the disk filled up')
      const wave_ = users(`df${wave}-`, 0, 2000)
      everyone.push(...wave_)
      replies = replies.concat(await keyedStorm(t.url, couponId, wave_))
    }
    for (const r of replies)
      assert.ok(r.status === 201 || (r.status === 503 && r.retryAfter === '1'), JSON.stringify(r))
    assert.equal((await readiness(t)).status, 503, 'readiness names the database')
    // A spend fits while some page of the table still has room (pruned from the
    // inserts rolled back); one by one they use it up, and then are refused.
    const checkouts = []
    for (const u of spenders) checkouts.push(await checkout(t, couponId, u))
    const refused = checkouts.filter((c) => c.status !== 200)
    assert.ok(refused.length > 0, 'the disk filled up under the spends too')
    assertUnavailable(refused, 'disk full')

    await disk.grow()
    await recovered(t)
    const again = await keyedStorm(t.url, couponId, everyone)
    assert.deepEqual(tally(again), { '201': everyone.length }, 'the waiting wins are the retries’')
    const won = winsOf(again)
    for (const [user, rank] of winsOf(replies)) assert.equal(won.get(user), rank, user)
    for (const u of spenders) assert.equal((await checkout(t, couponId, u)).status, 200, u)
    const view = await assertInvariants(url, couponId, new Map([...won, ...spent]))
    assert.equal(view.rows, everyone.length + spenders.length)
  })

  it('a statement timeout answers 503 with Retry-After; the win is written once the lock goes', async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: 100 })
    const spender = await issueWithKey(t, couponId, 'st-spender', 'st-spender')
    const locker = new pg.Client({ connectionString: url })
    await locker.connect()
    let during: Awaited<ReturnType<typeof issueWithKey>>
    try {
      await locker.query('begin')
      await locker.query('lock table coupon_issues in access exclusive mode')
      during = await issueWithKey(t, couponId, 'st-user', 'st-key')
      assertUnavailable([during, await checkout(t, couponId, 'st-spender')], 'a statement timeout')
    } finally {
      await locker.query('rollback')
      await locker.end()
    }
    assert.notEqual((await readiness(t)).status, 503, 'a timeout says nothing of writes')
    await recovered(t)
    const retried = await issueWithKey(t, couponId, 'st-user', 'st-key')
    assert.equal(retried.status, 201)
    assert.equal((await checkout(t, couponId, 'st-spender')).status, 200)
    await assertInvariants(
      url,
      couponId,
      new Map([
        ['st-spender', spender.rank],
        ['st-user', retried.rank],
      ]),
    )
  })

  it('lost connections mid-storm: 201 or 503 with Retry-After, never 500; nothing lost', {
    timeout: 60_000,
  }, async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: 100_000 })
    const name = new URL(url).pathname.slice(1)
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    let cutting = true
    const cuts = (async () => {
      while (cutting) {
        await admin.query(
          `select pg_terminate_backend(pid) from pg_stat_activity
           where datname = $1 and pid <> pg_backend_pid()`,
          [name],
        )
        await sleep(20)
      }
    })()
    let replies: Awaited<ReturnType<typeof keyedStorm>>
    const everyone = users('lc', 0, 3000)
    try {
      replies = await keyedStorm(t.url || (await t.listen()), couponId, everyone)
    } finally {
      cutting = false
      await cuts
      await admin.end()
    }
    for (const r of replies)
      assert.ok(r.status === 201 || (r.status === 503 && r.retryAfter === '1'), JSON.stringify(r))
    assert.ok(
      replies.some((r) => r.status === 503),
      `the cuts reached the commits: ${JSON.stringify(tally(replies))}`,
    )
    await recovered(t)
    const again = await keyedStorm(t.url, couponId, everyone)
    assert.deepEqual(tally(again), { '201': everyone.length })
    const won = winsOf(again)
    for (const [user, rank] of winsOf(replies)) assert.equal(won.get(user), rank, user)
    await assertInvariants(url, couponId, won)
  })
})
