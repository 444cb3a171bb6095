/**
 * Every StockGate adapter, built for the contract suite. Selected by
 * FIRSTCOME_TEST_GATES (default "memory,redis,redis-cluster").
 */
import { loadConfig } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { databaseGateSource } from '../../src/db/gate-source.js'
import type { CouponRules } from '../../src/domain/coupon.js'
import { MemoryStockGate } from '../../src/gate/memory-stock-gate.js'
import { RedisStockGate } from '../../src/gate/redis-stock-gate.js'
import type { StockGate } from '../../src/gate/stock-gate.js'
import { connectRedis, createRedis } from '../../src/redis/connection.js'
import { RedisKeys } from '../../src/redis/keys.js'
import { createTestDatabase } from './databases.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from './redis.js'
import { redisServerAvailable, startCluster } from './redis-cluster.js'
import { IN_CI, skipUnless } from './services.js'

export interface GateUnderTest {
  gate: StockGate
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
    const gate = new MemoryStockGate()
    let nextId = 1
    return {
      gate,
      async addCoupon(rules) {
        const couponId = nextId++
        await gate.configure({ couponId, ...rules })
        return couponId
      },
      dispose: () => gate.close(),
    }
  },
}

/** The Redis gate over a key prefix of its own, rebuilding from a SQLite database. */
export const redisGate: GateFactory = {
  name: 'redis',
  skip: () => skipUnless('redis'),
  create: () => createRedisGate({ REDIS_URL }, async () => {}),
}

/** The same gate on a three-master Redis Cluster started for the suite. */
export const redisClusterGate: GateFactory = {
  name: 'redis-cluster',
  async skip() {
    if (redisServerAvailable()) return false
    return IN_CI ? false : 'redis-server is not installed (needed to start a test cluster)'
  },
  async create() {
    const cluster = await startCluster()
    try {
      return await createRedisGate({ REDIS_CLUSTER_NODES: cluster.spec }, () => cluster.stop())
    } catch (err) {
      await cluster.stop()
      throw err
    }
  },
}

async function createRedisGate(
  env: Record<string, string>,
  stop: () => Promise<void>,
): Promise<GateUnderTest> {
  const prefix = uniquePrefix()
  const config = loadConfig({ ...env, REDIS_KEY_PREFIX: prefix })
  if (!config.redis) throw new Error('no redis config')
  const client = createRedis(config.redis, 'firstcome-test')
  await connectRedis(client)
  const t = await createTestDatabase('sqlite')
  const gate = new RedisStockGate({
    client,
    keys: new RedisKeys(prefix),
    source: databaseGateSource(t.database.db),
  })
  return {
    gate,
    async addCoupon(rules) {
      const coupon = await insertCoupon(
        t.database.db,
        {
          title: 'contract',
          totalQuantity: rules.totalQuantity,
          discountAmount: 0,
          minAvailableAmount: 0,
          issueStart: new Date(rules.issueStart),
          issueEnd: new Date(rules.issueEnd),
        },
        new Date(),
      )
      await gate.configure({ couponId: coupon.id, ...rules })
      return coupon.id
    },
    async dispose() {
      if (!config.redis?.clusterNodes) {
        const admin = redisClient()
        await deleteKeys(admin, prefix)
        admin.disconnect()
      }
      await gate.close()
      await t.drop()
      await stop()
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
