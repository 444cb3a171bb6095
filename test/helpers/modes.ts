/**
 * The two ways firstcome runs, for suites that loop over them as the contract
 * suites loop over gates (gates.ts) and dialects (databases.ts):
 *   embedded    the in-process gate; a win is committed before its 201
 *   Redis mode  the Lua gate and its stream; the worker persists the win after
 * `mode.suite()`, called inside a describe, owns what the suite runs on (a
 * database of its own; in Redis mode a key prefix or a redis-server of its own,
 * see redis-suite.ts) and closes the services it starts after the suite.
 */
import { after, before, type TestContext } from 'node:test'
import type { Dialect } from '../../src/config.js'
import { type Database, type Db, openDatabase } from '../../src/db/database.js'
import { startApp } from './app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from './databases.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  type ServiceOptions,
  skipUnlessRedisSuite,
} from './redis-suite.js'
import { httpPool } from './storm.js'

export type ModeName = 'embedded' | 'redis'

export interface ModeSuite {
  /** A service in this mode, listening; closed when `t` ends, or else after the suite. */
  start(options?: ServiceOptions, t?: TestContext): Promise<Service>
  /** The suite's own connection to its database. */
  readonly db: Db
  readonly databaseUrl: string
  /** What a `firstcome` process needs besides DATABASE_URL to join the suite (Redis). */
  readonly processEnv: Record<string, string>
  /** Redis mode: the Redis suite underneath (keys, a client, the server); embedded: null. */
  readonly redis: ReturnType<typeof redisSuite> | null
}

export interface ServiceMode {
  mode: ModeName
  dialect: Dialect
  /** "embedded, sqlite", "Redis mode, postgres" */
  name: string
  skip(): Promise<string | false>
  suite(): ModeSuite
}

/** Embedded mode on `dialect`. */
export function embedded(dialect: Dialect): ServiceMode {
  return {
    mode: 'embedded',
    dialect,
    name: `embedded, ${dialect}`,
    skip: () => skipUnlessDialect(dialect),
    suite: () => embeddedSuite(dialect),
  }
}

/** Redis mode on `dialect` (the shared Redis unless `options.ownRedis`). */
export function redisMode(
  dialect: Dialect,
  options: Omit<RedisSuiteOptions, 'dialect'> = {},
): ServiceMode {
  const suiteOptions: RedisSuiteOptions = { ...options, dialect }
  return {
    mode: 'redis',
    dialect,
    name: `Redis mode, ${dialect}`,
    skip: () => skipUnlessRedisSuite(suiteOptions),
    suite() {
      const redis = redisSuite(suiteOptions)
      return {
        start: (o, t) => redis.start(o, t),
        get db() {
          return redis.db
        },
        get databaseUrl() {
          return redis.databaseUrl
        },
        get processEnv() {
          return redis.processEnv
        },
        redis,
      }
    },
  }
}

/** Embedded services on a database of the suite's own (several only to read it). */
function embeddedSuite(dialect: Dialect): ModeSuite {
  let url = ''
  let database: Database | undefined
  const services: Service[] = []

  before(async () => {
    url = await createDatabaseUrl(dialect)
    database = openDatabase(url, dialect, { poolSize: 2 })
  })
  after(async () => {
    for (const s of services.splice(0)) await close(s)
    await database?.close()
    if (url) await dropDatabaseUrl(url)
  })

  const close = async (s: Service) => {
    await s.pool.close()
    await s.close()
  }

  return {
    async start(o: ServiceOptions = {}, t?: TestContext) {
      const app = await startApp({ databaseUrl: url, ...(o.env ? { env: o.env } : {}) })
      let service: Service
      try {
        service = Object.assign(app, { pool: httpPool(await app.listen(), o.connections ?? 64) })
      } catch (err) {
        await app.close()
        throw err
      }
      if (t) t.after(() => close(service))
      else services.push(service)
      return service
    },
    get db() {
      if (!database) throw new Error('db: the suite has not started')
      return database.db
    },
    get databaseUrl() {
      return url
    },
    processEnv: {},
    redis: null,
  }
}
