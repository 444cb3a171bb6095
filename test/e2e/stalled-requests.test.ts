/**
 * Requests that start and then stall (headers, then part of a body or part of
 * the headers, then nothing): the server closes them within REQUEST_TIMEOUT_MS
 * (checked each second) while it serves normal traffic, and SIGTERM with such
 * connections open still exits 0 within SHUTDOWN_GRACE_MS. With one process
 * (embedded) and with API_PROCESSES=2 (Redis mode).
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { ADMIN_TOKEN, createCouponRetrying } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import { openStalled } from '../helpers/stalled.js'
import { httpPool, storm, users, waitFor, winsOf } from '../helpers/storm.js'
import { within } from '../helpers/wait.js'

const STALLED = 300
const REQUEST_TIMEOUT_MS = 3000
/** the documented bound: the timeout plus one check interval */
const CLOSE_BOUND_MS = REQUEST_TIMEOUT_MS + 1000
/** what a slow, shared test machine may add to it */
const SLACK_MS = 8000
const SHUTDOWN_GRACE_MS = 2000

interface Mode {
  name: string
  skip: string | false
  env: () => Record<string, string>
}

const prefix = uniquePrefix()
const MODES: Mode[] = [
  { name: 'one process, embedded', skip: false, env: () => ({}) },
  {
    name: 'API_PROCESSES=2, Redis mode',
    skip: await skipUnless('redis'),
    env: () => ({ API_PROCESSES: '2', REDIS_URL, REDIS_KEY_PREFIX: prefix }),
  },
]

after(async () => {
  if (MODES[1]?.skip) return
  const redis = redisClient()
  await deleteKeys(redis, prefix)
  redis.disconnect()
})

for (const mode of MODES) {
  describe(`stalled requests (${mode.name})`, { skip: mode.skip }, () => {
    const servers: ServerProcess[] = []
    const databases: string[] = []
    after(async () => {
      await stopAll(servers)
      for (const url of databases) await dropDatabaseUrl(url)
    })
    const start = async (env: Record<string, string>) => {
      const databaseUrl = await createDatabaseUrl('sqlite')
      databases.push(databaseUrl)
      const server = await startServer({
        databaseUrl,
        adminToken: ADMIN_TOKEN,
        env: { ...mode.env(), ...env },
      })
      servers.push(server)
      return server
    }

    /**
     * The coupon, its creation retried while answered 503 (as the answer asks):
     * with API_PROCESSES=2 the processes share one SQLite file, and on a loaded
     * machine one of them starting up can hold its write lock past
     * DB_LOCK_TIMEOUT_MS. What these tests check comes after.
     */
    const coupon = (s: ServerProcess, totalQuantity: number) =>
      createCouponRetrying(s, { totalQuantity }, { attempts: 10, pauseMs: 500 })

    it('closes hundreds of stalled requests within the bound and serves others meanwhile', {
      timeout: 90_000,
    }, async () => {
      const s = await start({
        REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        HEADERS_TIMEOUT_MS: '2000',
      })
      const couponId = await coupon(s, 100)
      const stalled = await openStalled(s.url, STALLED, { couponId, adminToken: ADMIN_TOKEN })
      try {
        const pool = httpPool(s.url, 20)
        const replies = await storm(pool, couponId, users('s', 0, 200))
        await pool.close()
        assert.equal(winsOf(replies).size, 100)
        assert.ok(
          stalled.closed() < STALLED,
          'the normal traffic was served while stalled connections were open',
        )

        await waitFor(
          'every stalled connection to be closed',
          async () => stalled.closed() === STALLED,
          CLOSE_BOUND_MS + SLACK_MS,
        )
        for (const c of stalled.connections) {
          assert.ok(
            (c.closedAfterMs ?? Infinity) <= CLOSE_BOUND_MS + SLACK_MS,
            `closed after ${c.closedAfterMs} ms`,
          )
          if (c.received === '') continue
          // An answer, if any, is a 408 in the service's error shape.
          assert.match(c.received, /^HTTP\/1\.1 408 /)
          const body = JSON.parse(c.received.slice(c.received.indexOf('\r\n\r\n') + 4))
          assert.deepEqual(Object.keys(body), ['code', 'message'])
          assert.equal(body.code, 'REQUEST_TIMEOUT')
        }
      } finally {
        stalled.destroy()
      }
    })

    it('exits 0 on SIGTERM with stalled requests open, within the grace', {
      timeout: 90_000,
    }, async () => {
      const s = await start({
        // Long enough that only the shutdown grace can end them.
        REQUEST_TIMEOUT_MS: '120000',
        HEADERS_TIMEOUT_MS: '60000',
        SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
      })
      const couponId = await coupon(s, 10)
      const stalled = await openStalled(s.url, 100, { couponId, adminToken: ADMIN_TOKEN })
      try {
        const signalled = performance.now()
        s.signal('SIGTERM')
        const exit = await within(s.exited, SHUTDOWN_GRACE_MS + 20_000, 'still running')
        assert.deepEqual(exit, { code: 0, signal: null }, `output: ${s.output().slice(-3000)}`)
        const tookMs = performance.now() - signalled
        assert.ok(tookMs < SHUTDOWN_GRACE_MS + 20_000, `exited after ${tookMs} ms`)
        assert.equal(stalled.closed(), 100)
      } finally {
        stalled.destroy()
      }
    })
  })
}
