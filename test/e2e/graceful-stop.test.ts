/**
 * SIGTERM during a storm: the server stops accepting, answers what it is
 * processing, persists every win it answered, and exits 0.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { serversOnOneDatabase } from '../helpers/processes.js'
import {
  assertWinsPersisted,
  checkRowsAt,
  httpPool,
  storm,
  users,
  winsOf,
} from '../helpers/storm.js'

const QUANTITY = 5000
const USERS = 4000
const SIGNAL_AFTER_ANSWERS = 300

describe('graceful stop (SIGTERM)', () => {
  const servers = serversOnOneDatabase()

  it('answers in-flight requests, persists every answered win and exits 0', {
    timeout: 60_000,
  }, async () => {
    const s = await servers.start({ adminToken: ADMIN_TOKEN })
    const couponId = await createCoupon(s, { title: 'graceful', totalQuantity: QUANTITY })

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
          s.signal('SIGTERM')
        }
      },
    })
    const [results, exit] = await Promise.all([replies, s.exited])
    await p.close()

    assert.deepEqual(exit, { code: 0, signal: null }, `output: ${s.output()}`)
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
    const view = await checkRowsAt(servers.databaseUrl, couponId)
    // Every answered win is a row with its rank …
    assertWinsPersisted(wins, view)
    // … and nothing was won without an answer: the server finished what it took in
    // (checkRows: issued_quantity is the row count too).
    assert.equal(view.rows, wins.size)
  })
})
