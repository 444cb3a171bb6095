/**
 * Overload: requests that waited longer than QUEUE_TIMEOUT_MS before they could
 * be decided are answered 503 at once instead of late. The server process is
 * frozen (SIGSTOP) with a flood of requests on their way, as a CPU-starved
 * process would be; once it runs again, what waited in the kernel meanwhile is
 * refused 503 UNAVAILABLE with Retry-After, later requests win again, every 201
 * is a row with the rank the client was told, and every request was answered.
 *
 * Sustained overload: the process is frozen again and again under a continuous
 * load, its event loop behind at every turn back. Admission refuses only part of
 * the requests: wins keep flowing between the refusals, never all or nothing.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { serversOnOneDatabase } from '../helpers/processes.js'
import {
  assertWinsPersisted,
  checkRowsAt,
  continuousStorm,
  getStats,
  httpPool,
  type IssueReply,
  storm,
  tally,
  users,
  waitDrained,
  winsOf,
} from '../helpers/storm.js'
import { waitFor } from '../helpers/wait.js'

const QUEUE_TIMEOUT_MS = 500
const FROZEN_MS = 4000
const CONNECTIONS = 100
/** The sustained overload: the loop is behind at each turn back, for FREEZES turns. */
const SUSTAINED_QUEUE_TIMEOUT_MS = 200
const FREEZE_MS = 300
const RUN_MS = 300
const FREEZES = 8

describe('overload: answer fast instead of late', () => {
  const servers = serversOnOneDatabase()

  it('refuses 503 what waited beyond QUEUE_TIMEOUT_MS, and loses no answered win', {
    timeout: 90_000,
  }, async () => {
    const s = await servers.start({
      adminToken: ADMIN_TOKEN,
      env: { QUEUE_TIMEOUT_MS: String(QUEUE_TIMEOUT_MS) },
    })
    const couponId = await createCoupon(s, { totalQuantity: 100_000 })
    const pool = httpPool(s.url, CONNECTIONS)
    try {
      // Every connection open before the freeze (on a route that is never shed).
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          const res = await pool.request({ method: 'GET', path: '/healthz' })
          await res.body.text()
        }),
      )

      s.signal('SIGSTOP')
      const flood = storm(pool, couponId, users('flood', 0, 2000))
      // The freeze lasts FROZEN_MS from when every connection carries a request.
      await waitFor('a request on every connection', () => pool.stats.running === CONNECTIONS)
      await sleep(FROZEN_MS)
      s.signal('SIGCONT')
      const replies = await flood

      const counts = tally(replies)
      assert.deepEqual(
        Object.keys(counts).sort(),
        ['201', '503 UNAVAILABLE'],
        JSON.stringify(counts),
      )
      assert.ok((counts['503 UNAVAILABLE'] ?? 0) >= 1, JSON.stringify(counts))
      for (const r of replies.filter((x) => x.status === 503)) {
        assert.equal(r.retryAfter, '1')
        assert.deepEqual(Object.keys(r.body as object), ['code', 'message'])
      }

      const wins = winsOf(replies)
      const view = await checkRowsAt(servers.databaseUrl, couponId)
      assert.equal(view.rows, wins.size, 'every 201 is a row, and only those')
      assertWinsPersisted(wins, view)
    } finally {
      s.signal('SIGCONT')
      await pool.close()
    }
  })

  it('under sustained overload answers a mix of 201 and 503, and loses no answered win', {
    timeout: 90_000,
  }, async () => {
    const s = await servers.start({
      adminToken: ADMIN_TOKEN,
      env: { QUEUE_TIMEOUT_MS: String(SUSTAINED_QUEUE_TIMEOUT_MS) },
    })
    const couponId = await createCoupon(s, { totalQuantity: 1_000_000 })
    const pool = httpPool(s.url, CONNECTIONS)
    // Replies answered once the overload had begun (after the first turn back).
    const afterFirstFreeze: IssueReply[] = []
    let overloaded = false
    const load = continuousStorm(pool, couponId, 'sustained', CONNECTIONS, (reply) => {
      if (overloaded) afterFirstFreeze.push(reply)
    })
    try {
      await waitFor('wins flowing before the overload', () =>
        load.replies.some((r) => r.status === 201),
      )
      for (let i = 0; i < FREEZES; i++) {
        s.signal('SIGSTOP')
        await sleep(FREEZE_MS)
        s.signal('SIGCONT')
        overloaded = true
        await sleep(RUN_MS)
      }
    } finally {
      s.signal('SIGCONT')
    }
    const replies = await load.stop()
    try {
      assert.deepEqual(
        replies.filter((r) => r.status === null),
        [],
        'every request was answered',
      )
      const counts = tally(replies)
      assert.deepEqual(
        Object.keys(counts).sort(),
        ['201', '503 UNAVAILABLE'],
        JSON.stringify(counts),
      )
      for (const r of replies.filter((x) => x.status === 503)) {
        assert.equal(r.retryAfter, '1')
        assert.deepEqual(Object.keys(r.body as object), ['code', 'message'])
      }
      // Partial: through the overload, wins kept flowing between the refusals.
      const during = tally(afterFirstFreeze)
      assert.ok((during['201'] ?? 0) > 0, JSON.stringify(during))
      assert.ok((during['503 UNAVAILABLE'] ?? 0) > 0, JSON.stringify(during))

      await waitDrained(pool, couponId)
      assert.equal((await getStats(pool, couponId)).queued, 0)
      const wins = winsOf(replies)
      const view = await checkRowsAt(servers.databaseUrl, couponId)
      assert.equal(view.rows, wins.size, 'every 201 is a row, and only those')
      assertWinsPersisted(wins, view)
    } finally {
      await pool.close()
    }
  })
})
