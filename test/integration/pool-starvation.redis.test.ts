/**
 * A table lock makes every public read that touches the locked table hang. Those
 * reads may fail (503, within the documented bound), but they must not take the
 * connections the event-day paths need: readiness stays ready, a coupon never
 * cached before is loaded for the gate and its first request wins at once, and
 * once the lock is gone every read answers normally.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import mysql from 'mysql2/promise'
import pg from 'pg'
import type { Pool } from 'undici'
import type { Dialect } from '../../src/config.js'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { INNODB_TRX_POLL_MS, lockWaits } from '../helpers/db-faults.js'
import { countIssues } from '../helpers/issue-counts.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { issueOnce, users, waitDrained, waitFor } from '../helpers/storm.js'

const SERVER_DIALECTS: Dialect[] = ['postgres', 'mysql']
const CONNECT_TIMEOUT_MS = 1000
const LOCK_TIMEOUT_MS = 1000
const STATEMENT_TIMEOUT_MS = 2000
/** The documented bound of a read: waiting for a connection, then one statement. */
const READ_BOUND_MS = CONNECT_TIMEOUT_MS + STATEMENT_TIMEOUT_MS
/** What a loaded machine may add to it. */
const SLACK_MS = 3000
const READERS = 48
/** The service's read connections (DB_READ_POOL_SIZE) */
const READ_POOL = 4

interface Answer {
  path: string
  status: number
  body: unknown
  ms: number
}

async function get(pool: Pool, path: string): Promise<Answer> {
  const started = performance.now()
  const res = await pool.request({ method: 'GET', path })
  const text = await res.body.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { path, status: res.statusCode, body, ms: performance.now() - started }
}

/** Holds an exclusive lock on coupon_issues from a connection of the test's own. */
async function lockIssues(dialect: Dialect, url: string): Promise<() => Promise<void>> {
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query('begin')
    await client.query('lock table coupon_issues in access exclusive mode')
    return async () => {
      await client.query('rollback')
      await client.end()
    }
  }
  const conn = await mysql.createConnection(url)
  await conn.query('lock tables coupon_issues write')
  return async () => {
    await conn.query('unlock tables')
    await conn.end()
  }
}

for (const dialect of SERVER_DIALECTS) {
  const options: RedisSuiteOptions = { dialect }
  describe(`${dialect}: a table lock does not starve the event-day paths (Redis mode)`, {
    skip: await skipUnlessRedisSuite(options),
  }, () => {
    const suite = redisSuite(options)
    let service: Service

    before(async () => {
      service = await suite.start({
        connections: READERS + 16,
        env: {
          DB_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
          DB_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS),
          DB_READ_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
          DB_READ_POOL_SIZE: String(READ_POOL),
        },
      })
    })

    it('readiness and a new coupon stay served; locked reads answer 503 in bound', async (tc) => {
      const { app, pool } = service
      const held = await createCoupon(app, { totalQuantity: null })
      const winners = users('held-', 0, READERS)
      await winInProcess(service, held, winners)
      await waitFor('the winners as rows', async () => (await countIssues(suite.db, held)) === 48)
      // Created, registered in the gate, never asked for: not in any node's cache.
      const fresh = await createCoupon(app, { totalQuantity: 10 })

      const unlock = await lockIssues(dialect, suite.databaseUrl)
      let unlocked = false
      try {
        const reads = winners.map((u) => get(pool, `/v1/coupons/${held}/issues/${u}`))
        reads.push(get(pool, `/v1/coupons/${held}/stats`), get(pool, `/v1/coupons/${held}`))
        // The reads have taken every connection they can: each waits on the lock.
        await waitFor(
          'every read connection to wait on the lock',
          async () => (await lockWaits(suite.db, dialect)) >= READ_POOL,
          undefined,
          INNODB_TRX_POLL_MS,
        )

        const ready = await get(pool, '/readyz')
        assert.equal(ready.status, 200, `readyz during the lock: ${JSON.stringify(ready.body)}`)
        const first = await issueOnce(pool, fresh, 'first-user')
        tc.diagnostic(`first issue on a new coupon: ${first.status} in ${Math.round(first.ms)} ms`)
        assert.equal(first.status, 201, `first issue: ${first.status} ${first.code}`)
        assert.ok(first.ms < CONNECT_TIMEOUT_MS + SLACK_MS, `first issue took ${first.ms} ms`)

        const answers = await Promise.all(reads)
        const slowest = Math.max(...answers.map((a) => a.ms))
        tc.diagnostic(`locked reads: slowest ${Math.round(slowest)} ms`)
        for (const a of answers) {
          // A read that does not touch the locked table may still succeed.
          if (a.status === 200) continue
          assert.equal(a.status, 503, `${a.path}: ${a.status} ${JSON.stringify(a.body)}`)
          assert.equal((a.body as { code?: unknown }).code, 'UNAVAILABLE')
          assert.ok(a.ms < READ_BOUND_MS + SLACK_MS, `${a.path} answered after ${a.ms} ms`)
        }
        assert.ok(
          answers.filter((a) => a.path.includes('/issues/')).every((a) => a.status === 503),
          'every status read of a winner needs the locked table',
        )
        unlocked = true
        await unlock()
      } finally {
        if (!unlocked) await unlock()
      }

      const after = await Promise.all(
        winners.map((u) => get(pool, `/v1/coupons/${held}/issues/${u}`)),
      )
      for (const a of after) {
        assert.equal(a.status, 200, `${a.path} after the lock: ${a.status}`)
        assert.equal((a.body as { state?: unknown }).state, 'ISSUED')
      }
      assert.equal((await get(pool, '/readyz')).status, 200)
      const stats = await waitDrained(pool, fresh)
      assert.equal(stats.persisted, 1)
      assert.equal(await countIssues(suite.db, fresh), 1)
    })
  })
}
