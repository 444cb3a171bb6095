/**
 * The Redis gate judges the window by Redis's clock (TIME in issue.lua), not by
 * the `now` it is handed, and stamps the win (the answer, the gate's record, the
 * stream entry the worker persists) with the instant it judged by. Each process
 * knows that clock by asking every node (a Cluster: every master) for TIME.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { IssueOutcome } from '../../src/domain/coupon.js'
import { GateClock, gateNodesOf } from '../../src/gate/gate-clock.js'
import type { RedisClient } from '../../src/redis/connection.js'
import { createRedisGate, type RedisGateUnderTest } from '../helpers/gates.js'
import { REDIS_URL } from '../helpers/redis.js'
import { serviceClient, startCluster, type TestCluster } from '../helpers/redis-cluster.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'

const MINUTE = 60_000
const refusal = (o: IssueOutcome) => (o.won ? 'WON' : o.refusal)

describe('Redis gate: one clock, Redis TIME', { skip: await skipUnless('redis') }, () => {
  let g: RedisGateUnderTest
  const redisNow = async () => {
    const [s, us] = await g.client.time()
    return Number(s) * 1000 + Math.floor(Number(us) / 1000)
  }
  before(async () => {
    g = await createRedisGate({ env: { REDIS_URL }, clock: 'redis' })
  })
  after(async () => g?.dispose())

  it("refuses by Redis's clock whatever the caller's says", async () => {
    const now = await redisNow()
    const future = await g.addCoupon({
      issueStart: now + MINUTE,
      issueEnd: now + 2 * MINUTE,
      totalQuantity: null,
    })
    const past = await g.addCoupon({
      issueStart: now - 2 * MINUTE,
      issueEnd: now - MINUTE,
      totalQuantity: null,
    })
    // The caller's clock says each window is open.
    assert.equal(refusal(await g.gate.tryIssue(future, 'u', now + MINUTE + 1)), 'ISSUE_NOT_STARTED')
    assert.equal(refusal(await g.gate.tryIssue(past, 'u', now - MINUTE - 1)), 'ISSUE_ENDED')
  })

  it("stamps the win with Redis's clock: the answer, the gate's record and the stream entry", async () => {
    const now = await redisNow()
    const id = await g.addCoupon({
      issueStart: now - MINUTE,
      issueEnd: now + MINUTE,
      totalQuantity: null,
    })
    const before = await redisNow()
    // A caller's clock an hour off, either way: it changes nothing.
    const outcome = await g.gate.tryIssue(id, 'u', now - 60 * MINUTE)
    const also = await g.gate.tryIssue(id, 'v', now + 60 * MINUTE)
    const afterwards = await redisNow()
    assert.ok(outcome.won && also.won)
    for (const { win } of [outcome, also]) {
      assert.ok(
        win.issuedAt >= before && win.issuedAt <= afterwards,
        `issuedAt ${win.issuedAt} not within [${before}, ${afterwards}]`,
      )
    }
    assert.equal((await g.gate.lookup(id, 'u'))?.issuedAt, outcome.win.issuedAt)
    const entries = await g.client.xrange(g.keys.coupon(id).stream, '-', '+')
    const t = entries.map(([, fields]) => Number(fields[fields.indexOf('t') + 1]))
    assert.deepEqual(t, [outcome.win.issuedAt, also.win.issuedAt])
  })
})

describe('GateClock on a Redis Cluster: every master', {
  skip: await skipUnlessRedisServer('to start a test cluster'),
}, () => {
  let cluster: TestCluster
  let client: RedisClient
  before(async () => {
    cluster = await startCluster()
    client = await serviceClient(cluster)
  })
  after(async () => {
    client?.disconnect()
    await cluster?.stop()
  })

  it("asks each master for its TIME and knows Redis's clock within the round trip", async () => {
    const nodes = gateNodesOf(client)
    assert.equal(new Set(nodes.map((n) => n.id)).size, 3, JSON.stringify(nodes.map((n) => n.id)))
    const asked = new Set<string>()
    const clock = new GateClock({
      nodes: () =>
        nodes.map(({ id, source }) => ({
          id,
          source: {
            time: () => {
              asked.add(id)
              return source.time()
            },
          },
        })),
      boundMs: 500,
    })
    await clock.probe()
    assert.equal(asked.size, 3)
    // The masters run on this host: their clocks are this process's.
    assert.ok(Math.abs(clock.offsetMs ?? Number.NaN) < 50, `offset ${clock.offsetMs}`)
    const time = clock.time()
    assert.ok(time && time.earliest <= time.now && time.now <= time.latest)
    assert.equal(clock.skewed, false)
  })
})
