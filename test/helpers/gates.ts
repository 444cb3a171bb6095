/**
 * Every StockGate adapter, built for the contract suite. Selected by
 * FIRSTCOME_TEST_GATES (default "memory,redis,redis-cluster").
 */
import { type Dialect, loadConfig } from '../../src/config.js'
import { CouponState, type CouponStateOptions } from '../../src/coupon-state/coupon-state.js'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import type { Db } from '../../src/db/database.js'
import { databaseGateSource } from '../../src/db/gate-source.js'
import type { CouponRules } from '../../src/domain/coupon.js'
import { DrawSeeds } from '../../src/draw/seeds.js'
import { MemoryStockGate } from '../../src/gate/memory-stock-gate.js'
import { RedisStockGate } from '../../src/gate/redis-stock-gate.js'
import type { StockGate } from '../../src/gate/stock-gate.js'
import { connectRedis, createRedis, type RedisClient } from '../../src/redis/connection.js'
import { createTestDatabase, insertRulesCoupon } from './databases.js'
import { deleteKeys, REDIS_URL, uniquePrefix } from './redis.js'
import { startCluster } from './redis-cluster.js'
import { skipUnlessRedisServer } from './redis-server.js'
import { skipUnless } from './services.js'

export interface GateUnderTest {
  gate: StockGate
  /** the draws' seeds the gate reads, by coupon id (set one before a draw coupon's entries) */
  seeds: Map<number, Buffer>
  /** Makes a coupon known to the gate the way the service does (create). */
  addCoupon(rules: Omit<CouponRules, 'couponId'>): Promise<number>
  dispose(): Promise<void>
}

export interface GateFactory {
  name: string
  skip(): Promise<string | false>
  create(): Promise<GateUnderTest>
}

export const memoryGate: GateFactory = {
  name: 'memory',
  skip: async () => false,
  async create() {
    const seeds = new Map<number, Buffer>()
    const gate = new MemoryStockGate(new DrawSeeds(async (id) => seeds.get(id) ?? null))
    let nextId = 1
    return {
      gate,
      seeds,
      async addCoupon(rules) {
        const couponId = nextId++
        await gate.register({ couponId, ...rules })
        return couponId
      },
      dispose: () => gate.close(),
    }
  },
}

/** The Redis gate on the shared Redis. */
export const redisGate: GateFactory = {
  name: 'redis',
  skip: () => skipUnless('redis'),
  create: () => createRedisGate({ env: { REDIS_URL } }),
}

/** The same gate on a three-master Redis Cluster started for the suite. */
export const redisClusterGate: GateFactory = {
  name: 'redis-cluster',
  skip: async () => skipUnlessRedisServer('to start a test cluster'),
  async create() {
    const cluster = await startCluster()
    try {
      return await createRedisGate({
        env: { REDIS_CLUSTER_NODES: cluster.spec },
        stop: () => cluster.stop(),
      })
    } catch (err) {
      await cluster.stop()
      throw err
    }
  },
}

export interface RedisGateUnderTest extends GateUnderTest {
  gate: RedisStockGate
  /** the coupon state the gate runs on (to rebuild a coupon explicitly) */
  state: CouponState
  client: RedisClient
  keys: RedisKeys
  /** the database the gate rebuilds from (SQLite unless `dialect` says otherwise) */
  db: Db
}

export interface RedisGateOptions {
  /** REDIS_URL or REDIS_CLUSTER_NODES */
  env: Record<string, string>
  /** stops what the gate runs on (a test cluster), after the gate */
  stop?: () => Promise<void>
  onRebuild?: CouponStateOptions['onRebuild']
  onCatchUp?: CouponStateOptions['onCatchUp']
  onLost?: CouponStateOptions['onLost']
  /** the database's dialect (default sqlite) */
  dialect?: Dialect
  /** the Redis connection's name */
  name?: string
  /**
   * whose clock judges the window: 'caller' (default here: the suites decide at
   * fixed instants, T0, T0 + 1 …) or 'redis' (the service's)
   */
  clock?: 'redis' | 'caller'
}

/** The Redis gate over a key prefix of its own, rebuilding from a database of its own. */
export async function createRedisGate(options: RedisGateOptions): Promise<RedisGateUnderTest> {
  const prefix = uniquePrefix()
  const config = loadConfig({ ...options.env, REDIS_KEY_PREFIX: prefix })
  if (!config.redis) throw new Error('no redis config')
  const client = createRedis(config.redis, options.name ?? 'firstcome-test')
  await connectRedis(client)
  const t = await createTestDatabase(options.dialect ?? 'sqlite')
  const keys = new RedisKeys(prefix)
  const state = new CouponState({
    client,
    keys,
    source: databaseGateSource(t.database.db),
    ...(options.onRebuild ? { onRebuild: options.onRebuild } : {}),
    ...(options.onCatchUp ? { onCatchUp: options.onCatchUp } : {}),
    ...(options.onLost ? { onLost: options.onLost } : {}),
  })
  const seeds = new Map<number, Buffer>()
  const gate = new RedisStockGate({
    state,
    clock: options.clock ?? 'caller',
    seeds: new DrawSeeds(async (id) => seeds.get(id) ?? null),
  })
  return {
    gate,
    seeds,
    state,
    client,
    keys,
    db: t.database.db,
    async addCoupon(rules) {
      const couponId = await insertRulesCoupon(t.database.db, rules, 'contract')
      await gate.register({ couponId, ...rules })
      return couponId
    },
    async dispose() {
      if (!config.redis?.clusterNodes) await deleteKeys(client, prefix)
      await gate.close()
      await t.drop()
      await options.stop?.()
    },
  }
}

export const GATE_FACTORIES: GateFactory[] = [memoryGate, redisGate, redisClusterGate]

const selected = (process.env.FIRSTCOME_TEST_GATES ?? 'memory,redis,redis-cluster')
  .split(',')
  .map((s) => s.trim())

export function selectedGates(): GateFactory[] {
  return GATE_FACTORIES.filter((f) => selected.includes(f.name))
}
