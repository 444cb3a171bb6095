/**
 * Redis Cluster under faults, with real processes: three masters and three
 * replicas (AOF everysec, cluster-node-timeout 1 s) started by the test, two
 * `firstcome serve --no-worker` and two `firstcome worker` on PostgreSQL, and
 * coupons whose `{c<id>}` slots lie on different masters. During a continuous
 * storm on both API processes:
 *
 * 1. the master of a busy coupon is killed -9: a replica takes over; the 503s,
 *    the time to the first 201 after the kill and the answered wins lost (a 201'd
 *    user neither a row nor in the gate once drained) are counted and printed;
 *    a loss may only be a win answered inside the replication window before the
 *    kill, which docs/architecture.md states;
 * 2. the killed node is restarted and rejoins as a replica of the new master;
 * 3. a busy coupon's slot is moved to another master (SETSLOT IMPORTING /
 *    MIGRATING, MIGRATE key by key, SETSLOT NODE) while it sells out: clients
 *    follow ASK and MOVED, no request is decided twice (no ALREADY_ISSUED for a
 *    user's only request), and the coupon ends with exactly its quantity won and
 *    persisted, ranks 1..N.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import type { Pool } from 'undici'
import { ADMIN_TOKEN, createCoupon, createCouponRetrying } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import {
  type ServerProcess,
  type ServiceProcess,
  startServer,
  startWorkerProcess,
  stopAll,
} from '../helpers/processes.js'
import { clusterNodes, startCluster, type TestCluster } from '../helpers/redis-cluster.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'
import {
  checkRowsAt,
  httpPool,
  type IssueReply,
  oneTo,
  sortedRanks,
  steadyStorm,
  tally,
  waitDrained,
  waitFor,
} from '../helpers/storm.js'

const PREFIX = 'fc:'
/** starting a process on a loaded machine: generous, as the other waits */
const START_MS = 90_000
/** cluster-node-timeout: a master silent this long is failed over */
const NODE_TIMEOUT_MS = 1000

/**
 * Creates a coupon right after a failover: a 503 (while the servers' clients
 * learn the new topology) is retried, for up to ten seconds.
 */
const createRetrying = (server: ServerProcess, totalQuantity: number) =>
  createCouponRetrying(server, { totalQuantity }, { attempts: 40, pauseMs: 250 })

interface Timed {
  reply: IssueReply
  /** performance.now() when the answer came */
  at: number
}

const skip = skipUnlessRedisServer('to start a Redis Cluster') || (await skipUnless('postgres'))

describe('Redis Cluster (3 masters + 3 replicas, AOF) under a storm', { skip }, () => {
  let cluster: TestCluster
  let databaseUrl = ''
  let redis: Cluster
  const servers: ServerProcess[] = []
  const workers: ServiceProcess[] = []
  const pools: Pool[] = []
  /** master port → a coupon whose slot it serves */
  const couponOn = new Map<number, number>()

  const slotOf = (couponId: number) => cluster.slotOf(`{c${couponId}}`)
  const usersKey = (couponId: number) => `${PREFIX}{c${couponId}}:users`

  before(async () => {
    cluster = await startCluster({ replicas: 1, aof: true, nodeTimeoutMs: NODE_TIMEOUT_MS })
    databaseUrl = await createDatabaseUrl('postgres')
    const env = {
      REDIS_CLUSTER_NODES: cluster.spec,
      REDIS_KEY_PREFIX: PREFIX,
      LOG_LEVEL: 'warn',
    }
    // One server first: it migrates the database the others then find ready.
    const serve = { databaseUrl, adminToken: ADMIN_TOKEN, env, args: ['--no-worker'] }
    servers.push(await startServer({ ...serve, timeoutMs: START_MS }))
    const workerEnv = { ...env, DATABASE_URL: databaseUrl, ADMIN_TOKEN }
    const [server, ...rest] = await Promise.allSettled([
      startServer({ ...serve, timeoutMs: START_MS }),
      startWorkerProcess(workerEnv, START_MS),
      startWorkerProcess(workerEnv, START_MS),
    ])
    // Whatever started is stopped after the suite, even if another part failed.
    if (server?.status === 'fulfilled') servers.push(server.value)
    for (const w of rest) if (w.status === 'fulfilled') workers.push(w.value)
    for (const r of [server, ...rest]) if (r?.status === 'rejected') throw r.reason
    for (const s of servers) pools.push(httpPool(s.url, 48))
    redis = new Cluster(
      cluster.nodes.map(({ host, port }) => ({ host, port })),
      { redisOptions: { maxRetriesPerRequest: 3 } },
    )
    redis.on('error', () => {})

    const masters = clusterNodes(cluster.cli(cluster.nodes[0]?.port ?? 0, 'cluster', 'nodes'))
      .filter((n) => n.flags.includes('master'))
      .map((n) => n.port)
    assert.equal(masters.length, 3)
    for (let i = 0; couponOn.size < 3; i++) {
      assert.ok(i < 40, 'coupons on every master')
      const id = await createCoupon(servers[0] as ServerProcess, { totalQuantity: 1_000_000 })
      const master = cluster.masterOf(slotOf(id))
      if (!couponOn.has(master)) couponOn.set(master, id)
    }
  })

  after(async () => {
    for (const p of pools) await p.close()
    await stopAll([...servers, ...workers])
    redis?.disconnect()
    await cluster?.stop()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  /** Continuous storms on both API processes: `lanes` requests in flight on each. */
  function stormOn(couponId: number, tag: string, lanes: number) {
    const timed: Timed[] = []
    const storms = pools.map((pool, i) =>
      steadyStorm(pool, couponId, `${tag}-${i}-`, lanes, (reply) =>
        timed.push({ reply, at: performance.now() }),
      ),
    )
    return {
      timed,
      wins: () => timed.filter((t) => t.reply.status === 201).length,
      async stop() {
        await Promise.all(storms.map((s) => s.stop()))
        return timed
      },
    }
  }

  /**
   * Once drained: the rows pass checkRows (no duplicate, unique ranks,
   * issued_quantity = rows); returns the 201'd users missing from both the rows
   * and the gate, and those whose row has another rank than they were told.
   */
  async function settle(couponId: number, timed: Timed[]) {
    await waitDrained(pools[0] as Pool, couponId, 60_000)
    const view = await checkRowsAt(databaseUrl, couponId)
    const gate = await redis.hgetall(usersKey(couponId))
    const lost: Timed[] = []
    const rerankedUsers: string[] = []
    /** answered 503, yet the script ran: the win stands (a 503 is not a refusal) */
    let decidedAnswered503 = 0
    for (const t of timed) {
      const u = t.reply.userId
      if (t.reply.status === 503 && (view.ranks.has(u) || gate[u] !== undefined))
        decidedAnswered503++
      if (t.reply.status !== 201) continue
      const rank = view.ranks.get(t.reply.userId)
      if (rank === undefined && gate[t.reply.userId] === undefined) lost.push(t)
      else if (rank !== undefined && rank !== t.reply.rank) rerankedUsers.push(t.reply.userId)
    }
    return { view, gateWinners: Object.keys(gate).length, lost, rerankedUsers, decidedAnswered503 }
  }

  let killed = 0
  let busy = 0

  it('kill -9 of a busy coupon’s master: a replica is promoted, the storm recovers, losses counted', async () => {
    const [master, couponId] = [...couponOn][0] as [number, number]
    killed = master
    busy = couponId
    const others = [...couponOn].slice(1).map(([, id]) => stormOn(id, `bg${id}`, 4))
    const hot = stormOn(couponId, 'fo', 16)
    await waitFor('the storm to win on the busy coupon', async () => hot.wins() >= 300, 30_000)

    const killAt = performance.now()
    await cluster.kill(master)
    // Recovered: a request sent after the kill is answered 201.
    const firstWin = await waitFor(
      'a 201 for a request sent after the kill',
      async () => hot.timed.find((t) => t.reply.status === 201 && t.at - t.reply.ms > killAt),
      30_000,
      20,
    )
    const recoveredMs = firstWin.at - killAt
    const winsAtRecovery = hot.wins()
    await waitFor(
      'the storm to go on winning after the recovery',
      async () => hot.wins() >= winsAtRecovery + 300,
      30_000,
    )
    const timed = await hot.stop()
    const background = await Promise.all(others.map((o) => o.stop()))

    const promoted = cluster.masterOf(slotOf(couponId))
    assert.notEqual(promoted, master, 'a replica now serves the slot')
    const afterKill = timed.filter((t) => t.at > killAt)
    const counts = tally(afterKill.map((t) => t.reply))
    const unavailable = afterKill.filter((t) => t.reply.status === 503).length
    const noAnswer = afterKill.filter((t) => t.reply.status === null).length
    const refused = afterKill.filter((t) => t.reply.status === 503).map((t) => t.at - killAt)
    const window = refused.length
      ? `503s answered ${Math.min(...refused).toFixed(0)}–${Math.max(...refused).toFixed(0)} ms after the kill`
      : 'no 503'
    // Only what the storm expects: wins, or 503 while the slot has no master.
    for (const key of Object.keys(counts)) {
      assert.ok(['201', '503 UNAVAILABLE'].includes(key), `answer after the kill: ${key}`)
    }

    const { view, gateWinners, lost, rerankedUsers, decidedAnswered503 } = await settle(
      couponId,
      timed,
    )
    const answeredWins = timed.filter((t) => t.reply.status === 201).length
    const lostBeforeKillMs = lost.map((t) => killAt - t.at)
    console.log(
      `  failover: ${timed.length} requests on the busy coupon, ${answeredWins} answered 201; ` +
        `after the kill ${afterKill.length} answers (${JSON.stringify(counts)}), ` +
        `${unavailable} × 503 (${window}), ${noAnswer} without an answer; ` +
        `first 201 to a request sent after the kill ${recoveredMs.toFixed(0)} ms after it; ` +
        `rows ${view.rows}, gate ${gateWinners} (${decidedAnswered503} of them answered 503); ` +
        `answered wins lost ${lost.length}` +
        (lost.length
          ? ` (answered ${Math.min(...lostBeforeKillMs).toFixed(0)}–${Math.max(...lostBeforeKillMs).toFixed(0)} ms before the kill)`
          : '') +
        `; told another rank ${rerankedUsers.length}`,
    )
    assert.equal(rerankedUsers.length, 0, 'a persisted win keeps the rank its user was told')
    // The documented window: a win answered within the replication lag before the
    // master died may be lost. The lag on loopback is far below the node timeout.
    for (const ms of lostBeforeKillMs) {
      assert.ok(ms >= 0 && ms < NODE_TIMEOUT_MS, `lost a win answered ${ms} ms before the kill`)
    }
    assert.ok(view.rows >= answeredWins - lost.length)
    for (const [i, bg] of background.entries()) {
      const id = [...couponOn][i + 1]?.[1] ?? 0
      const s = await settle(id, bg)
      assert.equal(s.lost.length, 0, `coupon ${id} on a live master lost no win`)
      assert.equal(s.view.rows, s.gateWinners)
    }
  })

  it('the killed master, restarted, rejoins as a replica of the promoted one', async () => {
    assert.ok(killed, 'runs after the failover test')
    await cluster.restart(killed)
    const promoted = cluster.masterOf(slotOf(busy))
    await waitFor(
      `node ${killed} to replicate ${promoted}`,
      async () => {
        const role = cluster.cli(killed, 'role').split('\n')
        return role[0] === 'slave' && Number(role[2]) === promoted && role[3] === 'connected'
      },
      30_000,
      100,
    )
    const me = clusterNodes(cluster.cli(promoted, 'cluster', 'nodes')).find(
      (n) => n.port === killed,
    )
    assert.ok(me?.flags.includes('slave'), `CLUSTER NODES: ${JSON.stringify(me)}`)
  })

  it('a busy coupon’s slot moves to another master while it sells out: ASK/MOVED followed, nothing decided twice', async () => {
    const QUANTITY = 2000
    const [from, to] = [...couponOn.keys()].slice(1) as [number, number]
    const couponId = await createRetrying(servers[0] as ServerProcess, QUANTITY)
    // A coupon of the wanted master: create until one lands there.
    let id = couponId
    for (let i = 0; cluster.masterOf(slotOf(id)) !== from; i++) {
      assert.ok(i < 40, `a coupon on ${from}`)
      id = await createRetrying(servers[0] as ServerProcess, QUANTITY)
    }
    const slot = slotOf(id)
    const hot = stormOn(id, 'mv', 16)
    await waitFor('the storm to win on the coupon', async () => hot.wins() >= 200, 30_000)

    const fromId = cluster.cli(from, 'cluster', 'myid')
    const toId = cluster.cli(to, 'cluster', 'myid')
    const startedAt = performance.now()
    assert.equal(cluster.cli(to, 'cluster', 'setslot', String(slot), 'importing', fromId), 'OK')
    assert.equal(cluster.cli(from, 'cluster', 'setslot', String(slot), 'migrating', toId), 'OK')
    let moved = 0
    for (;;) {
      const keys = cluster
        .cli(from, 'cluster', 'getkeysinslot', String(slot), '1')
        .split('\n')
        .filter(Boolean)
      if (keys.length === 0) break
      const r = cluster.cli(
        from,
        'migrate',
        '127.0.0.1',
        String(to),
        '',
        '0',
        '5000',
        'KEYS',
        ...keys,
      )
      assert.ok(r === 'OK' || r === 'NOKEY', `MIGRATE: ${r}`)
      moved += keys.length
      await sleep(100) // requests meet the slot half moved: ASK and TRYAGAIN
    }
    for (const n of clusterNodes(cluster.cli(to, 'cluster', 'nodes'))) {
      if (!n.flags.includes('master') || n.flags.includes('fail')) continue
      cluster.cli(n.port, 'cluster', 'setslot', String(slot), 'node', toId)
    }
    const migratedMs = performance.now() - startedAt
    assert.equal(cluster.masterOf(slot), to)

    await waitFor(
      'the coupon to sell out',
      async () =>
        hot.timed.some((t) => t.at > startedAt + migratedMs && t.reply.code === 'SOLD_OUT'),
      60_000,
    )
    const timed = await hot.stop()
    const replies = timed.map((t) => t.reply)
    const counts = tally(replies)
    assert.equal(counts['409 ALREADY_ISSUED'] ?? 0, 0, 'a user’s only request was decided twice')
    const wins = replies.filter((r) => r.status === 201)
    assert.equal(new Set(wins.map((r) => r.rank)).size, wins.length, 'ranks answered unique')
    for (const key of Object.keys(counts)) {
      assert.ok(['201', '409 SOLD_OUT', '503 UNAVAILABLE'].includes(key), `answer: ${key}`)
    }
    const { view, gateWinners, lost, rerankedUsers, decidedAnswered503 } = await settle(id, timed)
    console.log(
      `  slot ${slot} moved ${from} → ${to} (${moved} keys, ${migratedMs.toFixed(0)} ms) under ${timed.length} requests: ${JSON.stringify(counts)}; rows ${view.rows}, gate ${gateWinners} (${decidedAnswered503} answered 503), lost ${lost.length}`,
    )
    assert.equal(lost.length, 0)
    assert.equal(rerankedUsers.length, 0)
    assert.equal(gateWinners, QUANTITY)
    assert.equal(view.rows, QUANTITY)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(QUANTITY))
  })
})
