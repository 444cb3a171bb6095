/**
 * Database faults on SQLite answered as what they are (a `firstcome serve`
 * process, embedded mode): the disk full (its file on a small tmpfs) and the
 * database locked by another process past busy_timeout. While the disk is full,
 * issue and checkout answer 503 with Retry-After, /readyz names the database and
 * the log says SQLITE_FULL (it used to say only "cannot rollback - no transaction
 * is active", and /readyz stayed 200); once there is room, every win is a row and
 * the invariants hold. SQLite has no connection to lose: it is a library in the
 * process.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { ADMIN_TOKEN, admin, createCoupon } from '../helpers/app.js'
import { mountTmpfs, skipUnlessMount, type Tmpfs } from '../helpers/disk-faults.js'
import { assertInvariants } from '../helpers/invariants.js'
import { keyedStorm } from '../helpers/keyed-storm.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { type IssueReply, tally, users, waitFor, winsOf } from '../helpers/storm.js'

const unavailableOrOk = (ok: number) => (r: { status: number | null; retryAfter: string | null }) =>
  r.status === ok || (r.status === 503 && r.retryAfter === '1')

async function readyz(url: string) {
  const res = await fetch(`${url}/readyz`)
  return { status: res.status, body: await res.text() }
}

async function checkout(url: string, couponId: number, userId: string) {
  const res = await fetch(`${url}/v1/coupons/${couponId}/issues/${userId}/use`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ orderId: `order-${userId}`, orderAmount: 1_000_000 }),
  })
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() }
}

describe('database faults on SQLite (a server process)', { skip: await skipUnlessMount() }, () => {
  let disk: Tmpfs
  let server: ServerProcess
  let databaseUrl = ''
  before(async () => {
    disk = await mountTmpfs(4096)
    databaseUrl = `sqlite:${join(disk.dir, 'firstcome.sqlite')}`
    server = await startServer({
      databaseUrl,
      adminToken: ADMIN_TOKEN,
      env: { DB_LOCK_TIMEOUT_MS: '300' },
    })
  })
  after(async () => {
    if (server) await stopAll([server])
    await disk?.unmount()
  })

  /** Sends every request again with its key until each is a 201. */
  const settle = (couponId: number, everyone: string[]) =>
    waitFor(
      'every keyed request to be a 201',
      async () => {
        const again = await keyedStorm(server.url, couponId, everyone)
        return again.every((r) => r.status === 201) ? again : null
      },
      30_000,
      200,
    )

  it('disk full: 503 with Retry-After, readiness and the log name it, then every win is a row', {
    timeout: 120_000,
  }, async () => {
    const couponId = await createCoupon(server, { totalQuantity: 1_000_000 })
    const spenders = users('sf-spender', 0, 50)
    const spent = winsOf(await keyedStorm(server.url, couponId, spenders))
    assert.equal(spent.size, spenders.length)
    const everyone: string[] = []
    let replies: IssueReply[] = []
    for (let wave = 0; !replies.some((r) => r.status === 503); wave++) {
      assert.ok(wave < 50, 'the disk filled up')
      const more = users(`sf${wave}-`, 0, 2000)
      everyone.push(...more)
      replies = replies.concat(await keyedStorm(server.url, couponId, more))
    }
    for (const r of replies) assert.ok(unavailableOrOk(201)(r), JSON.stringify(r))
    const ready = await readyz(server.url)
    assert.equal(ready.status, 503, `readiness while the disk is full: ${ready.body}`)
    assert.match(ready.body, /database/)
    const checkouts = []
    for (const u of spenders) checkouts.push(await checkout(server.url, couponId, u))
    for (const c of checkouts) assert.ok(unavailableOrOk(200)(c), JSON.stringify(c))
    assert.ok(
      checkouts.some((c) => c.status === 503),
      'checkout refused for want of room',
    )
    await server.waitForOutput(/SQLITE_FULL/)
    assert.doesNotMatch(server.output(), /cannot rollback/)

    await disk.grow()
    await waitFor('readiness back', async () => (await readyz(server.url)).status === 200, 30_000)
    const again = await settle(couponId, everyone)
    assert.deepEqual(tally(again), { '201': everyone.length })
    const won = winsOf(again)
    for (const [user, rank] of winsOf(replies)) assert.equal(won.get(user), rank, user)
    for (const u of spenders) assert.equal((await checkout(server.url, couponId, u)).status, 200)
    const view = await assertInvariants(databaseUrl, couponId, new Map([...won, ...spent]))
    assert.equal(view.rows, everyone.length + spenders.length)
  })

  it('locked by another process past busy_timeout: 503 with Retry-After, then written', async () => {
    const couponId = await createCoupon(server, { totalQuantity: 100 })
    const spenders = users('sb-spender', 0, 5)
    const spent = winsOf(await keyedStorm(server.url, couponId, spenders))
    const other = new DatabaseSync(databaseUrl.slice('sqlite:'.length))
    let during: IssueReply[]
    let checkouts: Awaited<ReturnType<typeof checkout>>[] = []
    try {
      other.exec('begin immediate')
      during = await keyedStorm(server.url, couponId, ['sb-user'])
      checkouts = await Promise.all(spenders.map((u) => checkout(server.url, couponId, u)))
    } finally {
      other.exec('rollback')
      other.close()
    }
    assert.deepEqual(tally(during), { '503 UNAVAILABLE': 1 })
    assert.equal(during[0]?.retryAfter, '1')
    for (const c of checkouts) assert.deepEqual([c.status, c.retryAfter], [503, '1'], c.body)
    assert.equal((await readyz(server.url)).status, 200, 'a busy database takes writes')
    const again = await settle(couponId, ['sb-user'])
    for (const u of spenders) assert.equal((await checkout(server.url, couponId, u)).status, 200)
    await assertInvariants(databaseUrl, couponId, new Map([...spent, ...winsOf(again)]))
  })
})
