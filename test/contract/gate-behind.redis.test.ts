/**
 * The Redis gate behind the database: its state is older than the rows (a
 * restart from a shorter AOF or an older RDB, a promoted replica: another Redis
 * process, so the coupon's stamp is not this server's), or gone (a flushed node),
 * or marked behind by the worker. Before it answers again it catches up: no rank
 * or unit the database holds is handed out again, and the wins this process
 * answered that are gone for good are reported lost, once each. On the shared
 * Redis and on a Redis Cluster.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { insertWins } from '../../src/db/issues-repo.js'
import type { IssueOutcome, Win } from '../../src/domain/coupon.js'
import { insertRulesCoupon } from '../helpers/databases.js'
import { createRedisGate, type RedisGateUnderTest } from '../helpers/gates.js'
import { REDIS_URL } from '../helpers/redis.js'
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'

const T0 = Date.now()
const rank = (o: IssueOutcome) => (o.won ? o.win.rank : o.refusal)

const TARGETS = [
  { name: 'Redis', skip: () => skipUnless('redis'), cluster: false },
  {
    name: 'Redis Cluster',
    skip: () => Promise.resolve(skipUnlessRedisServer('to start a test cluster')),
    cluster: true,
  },
]

for (const target of TARGETS) {
  describe(`a gate behind the database, on ${target.name}`, { skip: await target.skip() }, () => {
    let g: RedisGateUnderTest
    let cluster: TestCluster | undefined
    const catchUps: [number, { recovered: number; freed: number }][] = []
    const lost: string[] = []

    before(async () => {
      cluster = target.cluster ? await startCluster() : undefined
      g = await createRedisGate({
        env: cluster ? { REDIS_CLUSTER_NODES: cluster.spec } : { REDIS_URL },
        onCatchUp: (id, figures) => catchUps.push([id, figures]),
        onLost: (w) => lost.push(`${w.userId}:${w.rank}`),
      })
    })
    after(async () => {
      await g?.dispose()
      await cluster?.stop()
    })

    const coupon = async (totalQuantity: number) => {
      const id = await insertRulesCoupon(
        g.db,
        { totalQuantity, issueStart: T0 - 60_000, issueEnd: T0 + 3_600_000 },
        'behind',
      )
      await g.gate.register({
        couponId: id,
        totalQuantity,
        issueStart: T0 - 60_000,
        issueEnd: T0 + 3_600_000,
      })
      return id
    }
    const issue = async (id: number, user: string) => rank(await g.gate.tryIssue(id, user, T0))
    /** The worker's part: these wins become rows. */
    const persist = (id: number, wins: [string, number][]) =>
      insertWins(
        g.db,
        wins.map(([userId, r]): Win => ({ couponId: id, userId, rank: r, issuedAt: T0 })),
        new Date(),
      )
    /**
     * Redis restarted from an older copy: these users' wins (and their queued
     * entries) are gone, and the server is another process (its run_id differs
     * from the stamp, and no live key survives).
     */
    const restartForgetting = async (id: number, users: string[]) => {
      const k = g.keys.coupon(id)
      await g.client.hdel(k.users, ...users)
      await g.client.del(k.stream, k.live)
      await g.client.hset(k.meta, 'run', 'a-server-that-is-gone')
    }

    it('catches up before it answers: never a rank or unit the database holds', async () => {
      const id = await coupon(5)
      for (const [i, u] of ['a', 'b', 'c', 'd'].entries()) assert.equal(await issue(id, u), i + 1)
      await persist(id, [
        ['a', 1],
        ['b', 2],
        ['c', 3],
        ['d', 4],
      ])
      await restartForgetting(id, ['c', 'd'])
      catchUps.length = 0
      assert.equal(await issue(id, 'e'), 5, 'the next rank after the database’s')
      assert.equal(await issue(id, 'c'), 'ALREADY_ISSUED')
      assert.equal(await issue(id, 'f'), 'SOLD_OUT')
      assert.deepEqual(catchUps, [[id, { recovered: 2, freed: 0 }]])
      assert.deepEqual(lost, [], 'every answered win is still a win')
    })

    it('reports the answered wins Redis forgot before they were rows, and gives their ranks again', async () => {
      const id = await coupon(4)
      for (const u of ['p', 'q', 'r']) await issue(id, u)
      await persist(id, [
        ['p', 1],
        ['r', 3],
      ])
      await restartForgetting(id, ['q', 'r'])
      catchUps.length = 0
      lost.length = 0
      assert.equal(await issue(id, 's'), 2, 'the rank nobody holds any more')
      assert.deepEqual(lost, ['q:2'])
      assert.deepEqual(catchUps, [[id, { recovered: 1, freed: 1 }]])
      assert.equal(await issue(id, 't'), 4)
      assert.equal(await issue(id, 'u'), 'SOLD_OUT')
      assert.deepEqual(lost, ['q:2'], 'each lost win reported once')
    })

    it('a flushed coupon is rebuilt from the database, and its lost wins reported', async () => {
      const id = await coupon(3)
      for (const u of ['x', 'y']) await issue(id, u)
      await persist(id, [['x', 1]])
      const k = g.keys.coupon(id)
      await g.client.del(k.meta, k.users, k.holes, k.stream, k.live)
      lost.length = 0
      assert.equal(await issue(id, 'x'), 'ALREADY_ISSUED')
      assert.deepEqual(lost, ['y:2'])
      assert.equal(await issue(id, 'z'), 2)
      assert.equal(await issue(id, 'w'), 3)
      assert.equal(await issue(id, 'v'), 'SOLD_OUT')
    })

    it('refuses a quantity below the database’s count only once caught up', async () => {
      const id = await coupon(5)
      for (const u of ['g', 'h', 'i']) await issue(id, u)
      await persist(id, [
        ['g', 1],
        ['h', 2],
        ['i', 3],
      ])
      await restartForgetting(id, ['h', 'i'])
      const rules = { couponId: id, issueStart: T0 - 60_000, issueEnd: T0 + 3_600_000 }
      assert.equal(await g.state.configure({ ...rules, totalQuantity: 2 }), 'NOT_LOADED')
      assert.equal(await g.state.ensureLoaded(id), true)
      assert.equal(
        await g.state.configure({ ...rules, totalQuantity: 2 }),
        'QUANTITY_BELOW_ISSUED',
        'the database holds 3',
      )
      assert.equal(await g.state.configure({ ...rules, totalQuantity: 3 }), 'OK')
    })

    it('a coupon marked behind (the database refused a rank) catches up once', async () => {
      const id = await coupon(3)
      assert.equal(await issue(id, 'm'), 1)
      await persist(id, [['m', 1]])
      catchUps.length = 0
      await g.state.markBehind(id)
      assert.equal(await issue(id, 'n'), 2)
      assert.equal(await issue(id, 'o'), 3)
      assert.deepEqual(catchUps, [[id, { recovered: 0, freed: 0 }]])
    })
  })
}
