/**
 * `serve` with API_PROCESSES=2 (Redis mode): two processes share the port, the
 * invariants hold across them, a killed one is replaced, and SIGTERM stops all.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { Pool } from 'undici'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'

const TOKEN = 'api-processes-admin-token'

/** pids of the primary's live child processes */
function children(pid: number | undefined): number[] {
  if (pid === undefined) return []
  try {
    // Node processes only (tsx may have an esbuild child), and not a dead one yet
    // unreaped. Known by the executable they run (the primary forks this same
    // one), not by name: Node 24 names its main thread "MainThread", which ps
    // shows as the command.
    return execFileSync('ps', ['-o', 'pid=,stat=,args=', '--ppid', String(pid)], {
      encoding: 'utf8',
    })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([, stat, exe]) => exe === process.execPath && !stat?.startsWith('Z'))
      .map(([p]) => Number(p))
  } catch {
    return [] // ps exits 1 when there is none
  }
}

describe('serve with API_PROCESSES=2', { skip: await skipUnless('redis') }, () => {
  const prefix = uniquePrefix()
  let databaseUrl: string
  let server: ServerProcess

  before(async () => {
    databaseUrl = await createDatabaseUrl('sqlite')
    server = await startServer({
      databaseUrl,
      adminToken: TOKEN,
      env: { API_PROCESSES: '2', REDIS_URL, REDIS_KEY_PREFIX: prefix },
    })
  })
  after(async () => {
    const pids = children(server?.pid)
    if (server) await stopAll([server])
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    await dropDatabaseUrl(databaseUrl)
  })

  it('runs two processes; a storm across them wins exactly the quantity; a killed one is replaced', async () => {
    await waitFor('two API processes', () => children(server.pid).length === 2)
    const created = await fetch(`${server.url}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'two processes',
        totalQuantity: 300,
        discountAmount: 1,
        minAvailableAmount: 1,
        issueStart: new Date(Date.now() - 60_000).toISOString(),
        issueEnd: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    })
    assert.equal(created.status, 201)
    const couponId = ((await created.json()) as { id: number }).id

    const pool = new Pool(server.url, { connections: 200 })
    const ask = async (userId: string) => {
      const res = await pool.request({
        method: 'POST',
        path: `/v1/coupons/${couponId}/issues`,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId }),
      })
      const body = (await res.body.json()) as { rank?: number; code?: string }
      return { status: res.statusCode, rank: body.rank, code: body.code }
    }
    try {
      const answers = await Promise.all(
        Array.from({ length: 4000 }, (_, i) => ask(`user-${i % 2000}`)),
      )
      const ranks = answers.filter((a) => a.status === 201).map((a) => a.rank ?? 0)
      assert.equal(ranks.length, 300)
      assert.deepEqual(
        ranks.sort((a, b) => a - b),
        Array.from({ length: 300 }, (_, i) => i + 1),
      )
      for (const a of answers.filter((x) => x.status !== 201)) {
        assert.ok(a.code === 'SOLD_OUT' || a.code === 'ALREADY_ISSUED', JSON.stringify(a))
      }

      const [victim] = children(server.pid)
      assert.ok(victim)
      process.kill(victim, 'SIGKILL')
      await waitFor(
        'a replacement process',
        () => children(server.pid).filter((p) => p !== victim).length === 2,
      )
      const stats = await fetch(`${server.url}/v1/coupons/${couponId}/stats`)
      assert.equal(stats.status, 200)
      assert.equal(((await stats.json()) as { won: number }).won, 300)
    } finally {
      await pool.close()
    }
  })

  it('stops every process on SIGTERM and exits 0', async () => {
    const pids = children(server.pid)
    assert.equal(pids.length, 2)
    server.signal('SIGTERM')
    assert.deepEqual(await server.exited, { code: 0, signal: null })
    await waitFor('the API processes to exit', () =>
      pids.every((pid) => {
        try {
          process.kill(pid, 0)
          return false
        } catch {
          return true
        }
      }),
    )
  })
})
