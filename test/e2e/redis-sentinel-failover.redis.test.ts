// test-order: first — one of the longest files: started first, so that the run does not end waiting for it
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
 * behind the database and catches up with it before it answers, so no rank or
 * unit the database holds is given twice, and every answered win is a row except
 * those counted lost (firstcome_wins_lost_total).
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import type { Pool } from 'undici'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { assertInvariants } from '../helpers/invariants.js'
import { scrapedValue } from '../helpers/metrics.js'
import {
  type ServerProcess,
  startServer,
  startWorkerProcess,
  stopAll,
  type WorkerProcess,
} from '../helpers/processes.js'
import {
  type SentinelGroup,
  type SentinelGroupOptions,
  skipUnlessRedisSentinel,
  startSentinelGroup,
} from '../helpers/redis-sentinel.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'
import {
  checkRowsAt,
  httpPool,
  type IssueReply,
  steadyStorm,
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

/**
 * The sentinels, the master and its replica, one API process and one worker on
 * them and a database of their own, for the describe it is called in.
 */
function sentinelService(options: SentinelGroupOptions) {
  const f = {} as {
    group: SentinelGroup
    databaseUrl: string
    server: ServerProcess | undefined
    worker: WorkerProcess | undefined
    pool: Pool
  }

  before(async () => {
    f.group = await startSentinelGroup({ downAfterMs: 1000, ...options })
    f.databaseUrl = await createDatabaseUrl('postgres')
    const env = {
      REDIS_SENTINELS: f.group.spec,
      REDIS_SENTINEL_NAME: f.group.name,
      REDIS_KEY_PREFIX: 'fc:',
      LOG_LEVEL: 'warn',
    }
    f.server = await startServer({
      databaseUrl: f.databaseUrl,
      adminToken: ADMIN_TOKEN,
      env,
      noWorker: true,
      timeoutMs: START_MS,
    })
    f.worker = await startWorkerProcess(
      { ...env, DATABASE_URL: f.databaseUrl, ADMIN_TOKEN },
      START_MS,
    )
    f.pool = httpPool(f.server.url, LANES)
  })

  after(async () => {
    await f.pool?.close()
    await stopAll([f.server, f.worker].filter((p) => p !== undefined))
    await f.group?.stop()
    if (f.databaseUrl) await dropDatabaseUrl(f.databaseUrl)
  })

  return {
    f,
    /** What the service and the sentinels said, for a failover that never completes. */
    explain(timed: Timed[]): string {
      const { dir } = f.group
      const logs = readdirSync(dir)
        .filter((name) => name.endsWith('.log'))
        .map((name) => `${name}:\n${readFileSync(join(dir, name), 'utf8').slice(-2000)}`)
      return [
        `answers: ${JSON.stringify(tally(timed.map((t) => t.reply)))}`,
        `server:\n${f.server?.output().slice(-2000)}`,
        `worker:\n${f.worker?.output().slice(-2000)}`,
        ...logs,
      ].join('\n')
    },

    /** A continuous storm of LANES requests on the coupon, each answer timed. */
    stormOn(couponId: number, tag: string) {
      const timed: Timed[] = []
      const s = steadyStorm(f.pool, couponId, `${tag}-`, LANES, (reply) =>
        timed.push({ reply, at: performance.now() }),
      )
      return {
        timed,
        wins: () => timed.filter((t) => t.reply.status === 201).length,
        soldOut: () => timed.some((t) => t.reply.code === 'SOLD_OUT'),
        stop: () => s.stop(),
      }
    },
  }
}

describe('Redis under Sentinel: the master killed -9 under a storm', { skip }, () => {
  const { f, explain, stormOn } = sentinelService({ failoverTimeoutMs: 3000 })

  it('an up-to-date replica is promoted, the service follows it and loses nothing', async (tc) => {
    const couponId = await createCoupon(f.server as ServerProcess, { totalQuantity: QUANTITY })
    const early = stormOn(couponId, 'early')
    await waitFor('the storm to win 1,000', async () => early.wins() >= 1000, 60_000)
    await early.stop()
    // The pause: the replica takes in everything the master has answered.
    await waitFor(
      'the replica to have every write of the master',
      async () => {
        const [m, r] = await Promise.all([
          f.group.replication(f.group.master.port),
          f.group.replication(f.group.replica.port),
        ])
        return m.get('master_repl_offset') === r.get('slave_repl_offset')
      },
      10_000,
    )

    const killAt = performance.now()
    await f.group.master.kill()
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
    assert.equal(await f.group.masterPort(), f.group.replica.port, 'the sentinels name the replica')

    const counts = tally(during.timed.map((t) => t.reply))
    for (const key of Object.keys(counts)) {
      assert.ok(
        ['201', '503 UNAVAILABLE', '409 SOLD_OUT'].includes(key),
        `answer during the failover: ${key}`,
      )
    }
    const answered = winsOf([...early.timed, ...during.timed].map((t) => t.reply))
    await waitDrained(f.pool, couponId, 60_000)
    const view = await assertInvariants(f.databaseUrl, couponId, answered)
    assert.equal(view.rows, QUANTITY, 'sold out: every unit a row')
    assert.equal(answered.size, QUANTITY, 'every unit answered 201 once')
    assert.deepEqual((await checkRowsAt(f.databaseUrl, couponId)).rows, QUANTITY)
    tc.diagnostic(
      `first 201 ${recoveredMs.toFixed(0)} ms after the kill; during the failover ${JSON.stringify(counts)}`,
    )
  })
})

describe('Redis under Sentinel: SENTINEL FAILOVER of a live master', { skip }, () => {
  const { f, explain, stormOn } = sentinelService({ failoverTimeoutMs: 3000 })

  it('the service leaves the demoted master (READONLY) for the promoted one', async (tc) => {
    const couponId = await createCoupon(f.server as ServerProcess, { totalQuantity: QUANTITY })
    const early = stormOn(couponId, 'early')
    await waitFor('the storm to win 1,000', async () => early.wins() >= 1000, 60_000)
    await early.stop()
    // Sentinel promotes the replica without pausing the master's clients: writes
    // in between would be lost, so the storm waits for the switch.
    const { master, replica } = f.group
    await waitFor('the replica to have every write of the master', async () => {
      const [m, r] = await Promise.all([
        f.group.replication(master.port),
        f.group.replication(replica.port),
      ])
      return m.get('master_repl_offset') === r.get('slave_repl_offset')
    })
    const sentinel = new Redis({ port: f.group.sentinelPorts[0], host: '127.0.0.1' })
    try {
      await sentinel.call('SENTINEL', 'FAILOVER', f.group.name)
    } finally {
      sentinel.disconnect()
    }
    await waitFor(
      'the old master to be a replica of the promoted one',
      async () =>
        (await f.group.masterPort()) === replica.port &&
        (await f.group.replication(master.port)).get('role') === 'slave',
      30_000,
      100,
    )

    // The service's connections still reach the old master, alive, now a replica.
    const switchedAt = performance.now()
    const during = stormOn(couponId, 'after')
    const firstWin = await waitFor(
      'a 201 after the switch',
      async () => during.timed.find((t) => t.reply.status === 201),
      60_000,
      20,
    ).catch((err: unknown) => {
      throw new Error(`${err}\n${explain(during.timed)}`)
    })
    await waitFor('the coupon to sell out', async () => during.soldOut(), 60_000)
    await during.stop()

    const counts = tally(during.timed.map((t) => t.reply))
    for (const key of Object.keys(counts)) {
      assert.ok(
        ['201', '503 UNAVAILABLE', '409 SOLD_OUT'].includes(key),
        `answer after the switch: ${key}`,
      )
    }
    const answered = winsOf([...early.timed, ...during.timed].map((t) => t.reply))
    await waitDrained(f.pool, couponId, 60_000)
    const view = await assertInvariants(f.databaseUrl, couponId, answered)
    assert.equal(view.rows, QUANTITY, 'sold out: every unit a row')
    assert.equal(answered.size, QUANTITY, 'every unit answered 201 once')
    tc.diagnostic(
      `first 201 ${(firstWin.at - switchedAt).toFixed(0)} ms after the switch; then ${JSON.stringify(counts)}`,
    )
  })
})

describe('Redis under Sentinel: a replica held behind promoted under a storm', {
  skip,
}, () => {
  // The sentinels would point the replica back at the master after
  // failover-timeout: longer than the test. A sentinel promotes no replica
  // whose link has been down more than ten times down-after-milliseconds
  // (besides the master's own down time): the cut is held while 500 more wins
  // are made and persisted, which on a loaded machine took over 10 s, and the
  // failover was aborted ("-failover-abort-no-good-slave"). 6 s allows a minute.
  const { f, explain, stormOn } = sentinelService({
    failoverTimeoutMs: 120_000,
    replicaLink: true,
    downAfterMs: 6000,
  })

  /** firstcome_wins_lost_total across the API process and the worker */
  async function lost(): Promise<number> {
    const urls = [f.server?.url, f.worker?.metricsUrl].filter((u) => u !== undefined)
    const counts = await Promise.all(urls.map((u) => scrapedValue(u, 'firstcome_wins_lost_total')))
    return counts.reduce((a, b) => a + b, 0)
  }

  it('never gives a rank or a unit twice; what the replica lacked is counted lost', async (tc) => {
    const couponId = await createCoupon(f.server as ServerProcess, { totalQuantity: QUANTITY })
    const storm = stormOn(couponId, 'held')
    await waitFor('the storm to win 500', async () => storm.wins() >= 500, 60_000)
    // The replica stops receiving; the master goes on answering and the worker
    // persisting what the replica will never have.
    await f.group.replicaLink?.cut()
    const wonAtCut = storm.wins()
    await waitFor('500 more wins', async () => storm.wins() >= wonAtCut + 500, 30_000)
    // Stopped well before it sells out (on a slow host the worker may take a
    // while), so that there is something left to win after the promotion.
    await storm.stop()
    await waitFor(
      'those wins persisted',
      async () => (await checkRowsAt(f.databaseUrl, couponId)).rows >= wonAtCut + 300,
      30_000,
    )
    const killAt = performance.now()
    await f.group.master.kill()
    const after = stormOn(couponId, 'held-after')
    await waitFor(
      'a 201 after the kill',
      async () => after.timed.find((t) => t.reply.status === 201 && t.at - t.reply.ms > killAt),
      60_000,
      20,
    ).catch((err: unknown) => {
      throw new Error(`${err}\n${explain(after.timed)}`)
    })
    await waitFor('the coupon to sell out', async () => after.soldOut(), 60_000)
    await after.stop()
    assert.equal(await f.group.masterPort(), f.group.replica.port, 'the sentinels name the replica')

    const answered = winsOf([...storm.timed, ...after.timed].map((t) => t.reply))
    await waitDrained(f.pool, couponId, 60_000)
    const view = await checkRowsAt(f.databaseUrl, couponId) // no user twice, no rank twice
    assert.ok(view.rows <= QUANTITY, `oversold: ${view.rows} rows`)
    const missing = new Map([...answered].filter(([u, rank]) => view.ranks.get(u) !== rank))
    const counted = await lost()
    tc.diagnostic(
      `${answered.size} answered 201, ${view.rows} rows, ${missing.size} answered wins not rows, ${counted} counted lost`,
    )
    assert.ok(missing.size <= counted, `${missing.size} answered wins not rows, ${counted} counted`)
    await assertInvariants(
      f.databaseUrl,
      couponId,
      new Map([...answered].filter(([u]) => !missing.has(u))),
    )
  })
})
