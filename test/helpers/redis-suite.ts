/**
 * What a Redis-mode suite owns: a database (with a connection of its own to read
 * the rows), a Redis — the shared one under a key prefix of its own, or a
 * redis-server of its own to kill, freeze or wipe — optionally a TCP proxy in
 * front of one of them to cut it, and the services it starts on them. All of it
 * is created before the suite and removed after it, the services first.
 */
import assert from 'node:assert/strict'
import { after, before, type TestContext } from 'node:test'
import type { Redis } from 'ioredis'
import type { Pool } from 'undici'
import { type DelayProxyProcess, spawnDelayProxy } from '../../packages/bench/src/delay-proxy.js'
import type { Dialect } from '../../src/config.js'
import { PERSIST_GROUP, RedisKeys } from '../../src/coupon-state/keys.js'
import type { Db } from '../../src/db/database.js'
import { ADMIN_TOKEN, startApp, type TestApp } from './app.js'
import { createTestDatabase, skipUnlessDialect, type TestDatabase } from './databases.js'
import {
  type ServiceProcess,
  startWorkerProcess,
  stopAll,
  type WorkerProcess,
} from './processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from './redis.js'
import {
  type RedisServer,
  type RedisServerOptions,
  skipUnlessRedisServer,
  startRedisServer,
} from './redis-server.js'
import { SERVICES, skipUnless } from './services.js'
import {
  assertWinsPersisted,
  checkRows,
  httpPool,
  type IssueRowsView,
  waitDrained,
} from './storm.js'
import { TcpProxy } from './tcp-proxy.js'

export interface RedisSuiteOptions {
  /** default postgres */
  dialect?: Dialect
  /** a redis-server of the suite's own instead of the shared Redis */
  ownRedis?: RedisServerOptions
  /** a TCP proxy between the services and the database or Redis, to `cut()` it */
  proxy?: 'database' | 'redis'
  /**
   * A one-way delay, ms, between the services and both Redis and the database: a
   * delaying proxy process of its own in front of each (not with `proxy`)
   */
  delayMs?: number
}

/** `false` when the suite can run here; otherwise why it skips. */
export async function skipUnlessRedisSuite(options: RedisSuiteOptions): Promise<string | false> {
  const redis = options.ownRedis ? skipUnlessRedisServer() : await skipUnless('redis')
  return redis || skipUnlessDialect(options.dialect ?? 'postgres')
}

export interface ServiceOptions {
  /** more environment for the service (WORKER_BATCH_SIZE, …) */
  env?: Record<string, string>
  /** start the stream worker in the service (default: yes) */
  worker?: boolean
  /** connections of the Pool to storm it (default 64) */
  connections?: number
}

/** A service in Redis mode, listening, with a Pool to storm it. */
export interface Service extends TestApp {
  pool: Pool
}

export function redisSuite(options: RedisSuiteOptions = {}) {
  const dialect = options.dialect ?? 'postgres'
  const prefix = uniquePrefix()
  let db: TestDatabase | undefined
  let server: RedisServer | undefined
  let redis: Redis | undefined
  let proxy: TcpProxy | undefined
  let delayProxy: DelayProxyProcess | undefined
  /** what the services connect to (through the proxy, if any) */
  const urls = { database: '', redis: '' }
  const services: Service[] = []
  const workerProcesses: ServiceProcess[] = []

  before(async () => {
    db = await createTestDatabase(dialect)
    if (options.ownRedis) server = await startRedisServer(options.ownRedis)
    redis = server ? server.client() : redisClient()
    urls.database = db.url
    urls.redis = server?.url ?? REDIS_URL
    if (options.proxy === 'database') {
      const { host, port } = dialect === 'mysql' ? SERVICES.mysql : SERVICES.postgres
      proxy = new TcpProxy(host, port)
      const url = new URL(db.url)
      url.port = String(await proxy.start())
      urls.database = url.toString()
    } else if (options.proxy === 'redis') {
      proxy = new TcpProxy('127.0.0.1', server?.port ?? SERVICES.redis.port)
      urls.redis = `redis://127.0.0.1:${await proxy.start()}/0`
    }
    if (options.delayMs !== undefined) {
      const database = dialect === 'mysql' ? SERVICES.mysql : SERVICES.postgres
      const redisPort = server?.port ?? SERVICES.redis.port
      delayProxy = await spawnDelayProxy(options.delayMs, [
        { host: '127.0.0.1', port: redisPort },
        database,
      ])
      const [toRedis, toDatabase] = delayProxy.ports
      urls.redis = `redis://127.0.0.1:${toRedis}/0`
      const url = new URL(db.url)
      url.port = String(toDatabase)
      urls.database = url.toString()
    }
  })

  after(async () => {
    await proxy?.restore() // a service stops cleanly only with what it talks to
    await stopAll(workerProcesses)
    for (const s of services.splice(0)) await close(s)
    await proxy?.close()
    await delayProxy?.stop()
    if (redis && !server) await deleteKeys(redis, prefix)
    redis?.disconnect()
    await server?.stop()
    await db?.drop()
  })

  const close = async (s: Service) => {
    await s.pool.close()
    await s.close()
  }

  const started = <T>(value: T | undefined, what: string): T => {
    assert.ok(value, `${what}: the suite has not started`)
    return value
  }

  const keys = new RedisKeys(prefix)
  return {
    prefix,
    keys,
    /** The suite's own connection to the database (never through the proxy). */
    get db(): Db {
      return started(db, 'db').database.db
    },
    get databaseUrl(): string {
      return started(db, 'databaseUrl').url
    },
    /** The environment of a `firstcome` process on the suite's Redis (with DATABASE_URL). */
    get processEnv(): Record<string, string> {
      return { REDIS_URL: urls.redis, REDIS_KEY_PREFIX: prefix }
    },
    /** A client of the test's own (never through the proxy). */
    get redis(): Redis {
      return started(redis, 'redis')
    },
    /** With `ownRedis`: the redis-server to kill, freeze or restart. */
    get server(): RedisServer {
      return started(server, 'server (with ownRedis)')
    },
    get proxy(): TcpProxy {
      return started(proxy, 'proxy (with the proxy option)')
    },
    /** With `delayMs`: the delaying proxy process (its CPU). */
    get delayProxy(): DelayProxyProcess {
      return started(delayProxy, 'delayProxy (with delayMs)')
    },

    /** How many entries of a coupon's stream workers have read and not acknowledged. */
    async pending(couponId: number): Promise<number> {
      const stream = keys.coupon(couponId).stream
      const summary = (await started(redis, 'redis').xpending(stream, PERSIST_GROUP)) as [number]
      return Number(summary[0])
    },

    /**
     * Once the coupon has drained: every 201 is a row with its rank, and the rows
     * are exactly the winners the gate holds (and checkRows holds).
     */
    async assertSettled(
      pool: Pool,
      couponId: number,
      wins: Map<string, number>,
      timeoutMs?: number,
    ): Promise<IssueRowsView> {
      await waitDrained(pool, couponId, timeoutMs)
      const view = await checkRows(started(db, 'db').database.db, couponId)
      assertWinsPersisted(wins, view)
      const winners = await started(redis, 'redis').hlen(keys.coupon(couponId).users)
      assert.equal(view.rows, winners, 'rows = the winners the gate holds')
      return view
    },

    /**
     * Starts a service; it is closed when the test `t` ends, or else after the
     * suite.
     */
    async start(o: ServiceOptions = {}, t?: TestContext): Promise<Service> {
      const app = await startApp({
        env: { REDIS_URL: urls.redis, REDIS_KEY_PREFIX: prefix, ...o.env },
        databaseUrl: urls.database,
      })
      let service: Service
      try {
        if (o.worker ?? true) await app.startWorker()
        service = Object.assign(app, { pool: httpPool(await app.listen(), o.connections ?? 64) })
      } catch (err) {
        await app.close()
        throw err
      }
      if (t) t.after(() => close(service))
      else services.push(service)
      return service
    },

    /** `firstcome worker` as a child process on the suite's database and Redis. */
    async startWorkerProcess(env: Record<string, string> = {}): Promise<WorkerProcess> {
      const proc = await startWorkerProcess({
        DATABASE_URL: urls.database,
        REDIS_URL: urls.redis,
        REDIS_KEY_PREFIX: prefix,
        ADMIN_TOKEN,
        LOG_LEVEL: 'info',
        ...env,
      })
      workerProcesses.push(proc)
      return proc
    },
  }
}
