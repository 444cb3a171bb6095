/**
 * Redis under Sentinel, with real processes: a master, a replica and three
 * `redis-sentinel` started by the test (down-after-milliseconds 1 s), one
 * `firstcome serve --no-worker` and one `firstcome worker` on PostgreSQL pointed
 * at the sentinels (REDIS_SENTINELS, REDIS_SENTINEL_NAME). During a storm the
 * master is killed -9: the sentinels promote the replica, the service follows it
 * and answers again, and the coupon sells out; then the invariants are checked
 * against the database: no row beyond the quantity, no rank twice, no user twice,
 * every answered win a row with the rank it was told.
 *
 * Here the replica is up to date when the master dies (the storm pauses for the
 * replication to catch up just before the kill), so nothing may be lost. A
 * replica held behind loses the wins it had not received: the gate comes back
 * behind the database, which only the detection of a gate behind the database,
 * with its count of lost wins, can make safe; that case is skipped until it is in.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Pool } from 'undici'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { assertInvariants } from '../helpers/invariants.js'
import {
  type ServerProcess,
  type ServiceProcess,
  startServer,
  startWorkerProcess,
  stopAll,
} from '../helpers/processes.js'
import {
  type SentinelGroup,
  skipUnlessRedisSentinel,
  startSentinelGroup,
} from '../helpers/redis-sentinel.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'
import {
  checkRowsAt,
  continuousStorm,
  httpPool,
  type IssueReply,
  tally,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'

/** starting a process on a loaded machine: generous, as the other waits */
const START_MS = 90_000
const QUANTITY = 4000
const LANES = 32

interface Timed {
  reply: IssueReply
  /** performance.now() when the answer came */
  at: number
}

const skip =
  skipUnlessRedisServer('to run a master and a replica') ||
  skipUnlessRedisSentinel() ||
  (await skipUnless('postgres'))

describe('Redis under Sentinel: the master killed -9 under a storm', { skip }, () => {
  let group: SentinelGroup
  let databaseUrl = ''
  let server: ServerProcess | undefined
  let worker: ServiceProcess | undefined
  let pool: Pool

  before(async () => {
    group = await startSentinelGroup({ downAfterMs: 1000, failoverTimeoutMs: 3000 })
    databaseUrl = await createDatabaseUrl('postgres')
    const env = {
      REDIS_SENTINELS: group.spec,
      REDIS_SENTINEL_NAME: group.name,
      REDIS_KEY_PREFIX: 'fc:',
      LOG_LEVEL: 'warn',
    }
    server = await startServer({
      databaseUrl,
      adminToken: ADMIN_TOKEN,
      env,
      noWorker: true,
      timeoutMs: START_MS,
    })
    worker = await startWorkerProcess({ ...env, DATABASE_URL: databaseUrl, ADMIN_TOKEN }, START_MS)
    pool = httpPool(server.url, LANES)
  })

  after(async () => {
    await pool?.close()
    await stopAll([server, worker].filter((p) => p !== undefined))
    await group?.stop()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  /** What the service and the sentinels said, for a failover that never completes. */
  function explain(timed: Timed[]): string {
    const logs = readdirSync(group.dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => `${f}:\n${readFileSync(join(group.dir, f), 'utf8').slice(-2000)}`)
    return [
      `answers: ${JSON.stringify(tally(timed.map((t) => t.reply)))}`,
      `server:\n${server?.output().slice(-2000)}`,
      `worker:\n${worker?.output().slice(-2000)}`,
      ...logs,
    ].join('\n')
  }

  function stormOn(couponId: number, tag: string) {
    const timed: Timed[] = []
    const s = continuousStorm(pool, couponId, `${tag}-`, LANES, (reply) =>
      timed.push({ reply, at: performance.now() }),
    )
    return {
      timed,
      wins: () => timed.filter((t) => t.reply.status === 201).length,
      soldOut: () => timed.some((t) => t.reply.code === 'SOLD_OUT'),
      stop: () => s.stop(),
    }
  }

  it('an up-to-date replica is promoted, the service follows it and loses nothing', async (tc) => {
    const couponId = await createCoupon(server as ServerProcess, { totalQuantity: QUANTITY })
    const before = stormOn(couponId, 'before')
    await waitFor('the storm to win 1,000', async () => before.wins() >= 1000, 60_000)
    await before.stop()
    // The pause: the replica takes in everything the master has answered.
    await waitFor(
      'the replica to have every write of the master',
      async () => {
        const [m, r] = await Promise.all([
          group.replication(group.master.port),
          group.replication(group.replica.port),
        ])
        return m.get('master_repl_offset') === r.get('slave_repl_offset')
      },
      10_000,
    )

    const killAt = performance.now()
    await group.master.kill()
    const during = stormOn(couponId, 'after')
    const firstWin = await waitFor(
      'a 201 after the kill',
      async () => during.timed.find((t) => t.reply.status === 201),
      60_000,
      20,
    ).catch((err: unknown) => {
      throw new Error(`${err}\n${explain(during.timed)}`)
    })
    const recoveredMs = firstWin.at - killAt
    await waitFor('the coupon to sell out', async () => during.soldOut(), 60_000)
    await during.stop()
    assert.equal(await group.masterPort(), group.replica.port, 'the sentinels name the replica')

    const counts = tally(during.timed.map((t) => t.reply))
    for (const key of Object.keys(counts)) {
      assert.ok(
        ['201', '503 UNAVAILABLE', '409 SOLD_OUT'].includes(key),
        `answer during the failover: ${key}`,
      )
    }
    const answered = winsOf([...before.timed, ...during.timed].map((t) => t.reply))
    await waitDrained(pool, couponId, 60_000)
    const view = await assertInvariants(databaseUrl, couponId, answered)
    assert.equal(view.rows, QUANTITY, 'sold out: every unit a row')
    assert.equal(answered.size, QUANTITY, 'every unit answered 201 once')
    assert.deepEqual((await checkRowsAt(databaseUrl, couponId)).rows, QUANTITY)
    tc.diagnostic(
      `first 201 ${recoveredMs.toFixed(0)} ms after the kill; during the failover ${JSON.stringify(counts)}`,
    )
  })

  it('a replica held behind: wins it never received are counted as lost, never given twice', {
    skip:
      'needs the gate to detect that it came back behind the database and count the wins lost ' +
      '(issue 26 §2, "detect that the gate is behind the database"): without it the promoted ' +
      'replica hands out again ranks the database already holds',
  }, async () => {
    // To be written with that detection: hold the replication back (the replica's
    // link to the master cut while the storm goes on and the worker persists), kill
    // the master, let the sentinels promote the replica behind; then no rank twice,
    // no row beyond the quantity, and every answered win a row except those the
    // service counts as lost.
  })
})
