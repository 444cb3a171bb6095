/**
 * SIGTERM during a storm: the server stops accepting, answers what it is
 * processing, persists every win it answered, and exits 0.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { type ServerProcess, startServer } from '../helpers/server-process.js'
import {
  assertWinsPersisted,
  checkRowsAt,
  httpPool,
  storm,
  users,
  winsOf,
} from '../helpers/storm.js'

const ADMIN_TOKEN = 'e2e-admin-token-graceful'
const QUANTITY = 5000
const USERS = 4000
const SIGNAL_AFTER_ANSWERS = 300

describe('graceful stop (SIGTERM)', () => {
  let databaseUrl = ''
  let server: ServerProcess | null = null

  after(async () => {
    await server?.stop()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('answers in-flight requests, persists every answered win and exits 0', {
    timeout: 60_000,
  }, async () => {
    databaseUrl = await createDatabaseUrl('sqlite')
    server = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN })
    const s = server
    const created = await fetch(`${s.url}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'graceful',
        totalQuantity: QUANTITY,
        discountAmount: 1000,
        minAvailableAmount: 0,
        issueStart: new Date(Date.now() - 60_000).toISOString(),
        issueEnd: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    })
    assert.equal(created.status, 201)
    const couponId = ((await created.json()) as { id: number }).id

    const p = httpPool(s.url, 200)
    let answers = 0
    let signalled = false
    let answeredAfterSignal = 0
    const replies = storm(p, couponId, users('g', 1, USERS + 1), {
      onReply(r) {
        if (r.status === null) return
        answers++
        if (signalled && r.status !== 503) answeredAfterSignal++
        if (!signalled && answers >= SIGNAL_AFTER_ANSWERS) {
          signalled = true
          s.child.kill('SIGTERM')
        }
      },
    })
    const [results, exit] = await Promise.all([replies, s.exited])
    await p.close()

    assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${s.stderr()}`)
    assert.ok(signalled, 'the storm ran long enough to signal the server')
    // Requests the server was processing when the signal came were still answered.
    assert.ok(answeredAfterSignal > 0, 'some requests in flight at SIGTERM were answered')

    for (const a of results) {
      if (a.status === null || a.status === 201) continue
      // Requests that came in on a kept-alive connection after the signal.
      assert.equal(a.status, 503, `unexpected answer ${a.status} ${String(a.code)}`)
      assert.deepEqual(Object.keys(a.body as object), ['code', 'message'])
      assert.equal(a.code, 'UNAVAILABLE')
    }
    const wins = winsOf(results.filter((a) => a.status !== null))
    const view = await checkRowsAt(databaseUrl, couponId)
    // Every answered win is a row with its rank …
    assertWinsPersisted(wins, view)
    // … and nothing was won without an answer: the server finished what it took in
    // (checkRows: issued_quantity is the row count too).
    assert.equal(view.rows, wins.size)
  })
})
