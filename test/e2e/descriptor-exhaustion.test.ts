/**
 * A server process with few descriptors (`ulimit -n`), flooded with stalled
 * connections. With the connection cap lifted, the database pool cannot open a
 * connection (EMFILE): the client hears 503 with Retry-After, never 500, and the
 * service recovers once the stalled connections have timed out. With the default
 * cap (from the descriptor limit), the excess connections are refused and the
 * database still gets its descriptors: requests keep succeeding.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { Pool } from 'undici'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { skipUnless } from '../helpers/services.js'
import { openStalled, type Stalled } from '../helpers/stalled.js'
import { waitFor } from '../helpers/storm.js'

const DESCRIPTORS = 256
const STALLED = 400
/** connections opened before the flood, kept alive: new ones may be refused during it */
const CLIENT_CONNECTIONS = 30
const REQUEST_TIMEOUT_MS = 3000
/** how soon the excess connections are turned away: well within the request timeout */
const REFUSED_WITHIN_MS = 2000

interface Answer {
  status: number
  code: string | null
  retryAfter: string | null
}

/** Every client connection asks for the coupon's stats (a database read) at once. */
async function statsOnEveryConnection(pool: Pool, couponId: number): Promise<Answer[]> {
  return Promise.all(
    Array.from({ length: CLIENT_CONNECTIONS }, async () => {
      const res = await pool.request({ method: 'GET', path: `/v1/coupons/${couponId}/stats` })
      const body = (await res.body.json()) as { code?: string }
      const retryAfter = res.headers['retry-after']
      return {
        status: res.statusCode,
        code: body.code ?? null,
        retryAfter: typeof retryAfter === 'string' ? retryAfter : null,
      }
    }),
  )
}

/**
 * CLIENT_CONNECTIONS connections opened and kept alive (on /healthz, which needs
 * no database: the database pool keeps only what startup opened).
 */
async function keptAlivePool(url: string): Promise<Pool> {
  const pool = new Pool(url, {
    connections: CLIENT_CONNECTIONS,
    pipelining: 1,
    keepAliveTimeout: 120_000,
    keepAliveMaxTimeout: 120_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
  await Promise.all(
    Array.from({ length: CLIENT_CONNECTIONS }, async () => {
      const res = await pool.request({ method: 'GET', path: '/healthz' })
      await res.body.text()
    }),
  )
  assert.equal(pool.stats.connected, CLIENT_CONNECTIONS)
  return pool
}

/**
 * Resolves once the server has turned some of the stalled connections away, well
 * before REQUEST_TIMEOUT_MS would have closed them: it has accepted as many as
 * its descriptors (or its cap) allow.
 */
async function refusedAtOnce(stalled: Stalled): Promise<void> {
  await waitFor(
    'the server to turn the excess connections away',
    async () => stalled.closed() > 0,
    REFUSED_WITHIN_MS,
  )
}

describe('descriptor exhaustion', { skip: await skipUnless('postgres') }, () => {
  const servers: ServerProcess[] = []
  const databases: string[] = []
  after(async () => {
    await stopAll(servers)
    for (const url of databases) await dropDatabaseUrl(url)
  })
  const start = async (env: Record<string, string>) => {
    const databaseUrl = await createDatabaseUrl('postgres')
    databases.push(databaseUrl)
    const server = await startServer({
      databaseUrl,
      adminToken: ADMIN_TOKEN,
      descriptorLimit: DESCRIPTORS,
      env: {
        REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        HEADERS_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        ...env,
      },
    })
    servers.push(server)
    return server
  }

  it('answers 503, not 500, when out of descriptors, and recovers', {
    timeout: 90_000,
  }, async () => {
    // A read pool larger than the burst of reads: each read beyond the idle
    // connections must open one of its own.
    const s = await start({ MAX_CONNECTIONS: '100000', DB_READ_POOL_SIZE: '64' })
    const couponId = await createCoupon(s, { totalQuantity: 10 })
    const pool = await keptAlivePool(s.url)
    const stalled = await openStalled(s.url, STALLED, { couponId, adminToken: ADMIN_TOKEN })
    try {
      // A connection is established in the kernel before the server accepts it:
      // the descriptors are gone once the server turns the first ones away.
      await refusedAtOnce(stalled)
      const during = await statsOnEveryConnection(pool, couponId)
      assert.ok(
        during.every((a) => a.status === 200 || a.status === 503),
        JSON.stringify(during),
      )
      const refused = during.filter((a) => a.status === 503)
      assert.ok(refused.length > 0, 'the pool could not open a connection')
      for (const a of refused) {
        assert.equal(a.code, 'UNAVAILABLE')
        assert.equal(a.retryAfter, '1')
      }

      await waitFor('the stalled connections to time out', async () => stalled.closed() === STALLED)
      const recovered = await waitFor('every request to succeed again', async () => {
        const answers = await statsOnEveryConnection(pool, couponId)
        return answers.every((a) => a.status === 200) && answers
      })
      assert.equal(recovered.length, CLIENT_CONNECTIONS)
    } finally {
      stalled.destroy()
      await pool.close()
    }
  })

  it('keeps descriptors for the database under the default connection cap', {
    timeout: 90_000,
  }, async () => {
    const s = await start({})
    const couponId = await createCoupon(s, { totalQuantity: 10 })
    const pool = await keptAlivePool(s.url)
    const stalled = await openStalled(s.url, STALLED, { couponId, adminToken: ADMIN_TOKEN })
    try {
      // The excess is refused at once, not held until its timeout.
      await refusedAtOnce(stalled)
      const during = await statsOnEveryConnection(pool, couponId)
      assert.deepEqual(
        during.filter((a) => a.status !== 200),
        [],
      )
    } finally {
      stalled.destroy()
      await pool.close()
    }
  })
})
