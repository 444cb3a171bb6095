/**
 * The one place that reads the environment. `loadConfig(process.env)` returns a
 * frozen, typed Config or throws a ConfigError naming the bad variable.
 */
import { randomBytes } from 'node:crypto'

export type Dialect = 'sqlite' | 'postgres' | 'mysql'
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface RedisNode {
  host: string
  port: number
}

export interface RedisConfig {
  /**
   * `redis://host:port/db` for a single node; with `sentinels`, only its user,
   * password and db apply (to the master the sentinels name); null for a cluster
   */
  url: string | null
  clusterNodes: RedisNode[] | null
  /** Redis Sentinel: where the sentinels listen and the name of the master they watch */
  sentinels: { nodes: RedisNode[]; name: string } | null
  /** prefix of every key; the per-coupon hash tag `{c<id>}` follows it */
  keyPrefix: string
  /** bound on any single Redis command; past it the request gets 503 */
  commandTimeoutMs: number
  /**
   * CLOCK_SKEW_BOUND_MS: how far this process's clock may differ from the gate's
   * (Redis TIME, which judges every window) before it says so (metric, log,
   * dashboard); it keeps serving either way
   */
  clockSkewBoundMs: number
}

/** Bounds on every database call; past one the call fails and the request gets 503. */
export interface DbTimeouts {
  /** one statement (PostgreSQL statement_timeout, MariaDB max_statement_time, MySQL max_execution_time) */
  statementMs: number
  /** waiting for a row or table lock (SQLite: busy_timeout) */
  lockMs: number
  /**
   * a transaction left idle this long is ended by the server and its locks freed
   * (PostgreSQL, MariaDB; MySQL has no such setting)
   */
  idleTransactionMs: number
  /** opening a connection, or waiting for a free one in the pool */
  connectMs: number
}

/** Bounds on each HTTP connection and request, and on shutdown. */
export interface HttpLimits {
  /** the whole request, headers and body, must arrive within this; 408 after */
  requestTimeoutMs: number
  /** the headers must arrive within this (at most requestTimeoutMs) */
  headersTimeoutMs: number
  /** a kept-alive connection idle this long is closed */
  keepAliveTimeoutMs: number
  /** open connections per process; the excess is closed on accept. null: from the descriptor limit */
  maxConnections: number | null
  /** on SIGTERM, connections still open this long after are closed */
  shutdownGraceMs: number
  /** an issue request that waited this long before its gate call gets a quick 503; 0: never */
  queueTimeoutMs: number
}

/** Events and webhooks (docs/events.md). */
export interface EventsConfig {
  /** WEBHOOK_ALLOWED_HOSTS; null: any host */
  allowedHosts: readonly string[] | null
  webhooks: {
    timeoutMs: number
    retryForMs: number
    retryBaseMs: number
    retryMaxMs: number
  }
  /** the dispatcher's lease; a dead holder is replaced after this */
  leaseMs: number
  /** how often the dispatcher looks for new events when idle */
  tickMs: number
  /**
   * EVENTS_PUMP: this process competes for the dispatcher's lease (false: never;
   * Redis mode only, where `firstcome worker` processes pump instead)
   */
  pump: boolean
}

export interface Config {
  port: number
  host: string
  /** where users reach this server (a proxy in front), for the URLs the banner prints; null: the listen address */
  publicUrl: string | null
  /** `firstcome worker`'s own port for /metrics, /healthz and /readyz (0: any free port) */
  metricsPort: number
  /** API processes sharing the port (Redis mode; embedded mode holds its stock in one) */
  apiProcesses: number
  listenBacklog: number
  /** Redis mode: the opening draw's lease; a process that dies mid-draw is replaced after this long */
  drawLeaseMs: number
  http: HttpLimits
  /**
   * V8 grows the heap to (1 + this/100) × the live data before its next full
   * collection; 0 leaves V8's own factor (up to 4×)
   */
  heapGrowingPercent: number
  /** TRUST_PROXY: the proxies that add to X-Forwarded-For (0: the socket's address is the client) */
  trustProxy: number
  databaseUrl: string
  dialect: Dialect
  /** connections for the event-day paths: gate loads, the worker, admin, readiness */
  dbPoolSize: number
  /** connections for public reads (status, stats, a coupon), apart so they cannot starve the rest */
  dbReadPoolSize: number
  /** the core pool's bounds */
  dbTimeouts: DbTimeouts
  /** the public reads' bounds: the core's, with a shorter statement timeout */
  dbReadTimeouts: DbTimeouts
  /** null = embedded mode: in-process gate, wins written to the database before the 201 */
  redis: RedisConfig | null
  adminToken: string
  adminTokenGenerated: boolean
  /** the shop backends' token for spending, cancelling and the coupon box; null: none */
  serviceToken: string | null
  jwt: { secret: string } | { publicKey: string } | null
  rateLimitPerIp: number | null
  rateLimitPerUser: number | null
  logLevel: LogLevel
  events: EventsConfig
  worker: {
    batchSize: number
    /** rows per transaction when the stream has a backlog (several batches, one commit) */
    txRows: number
    /** a pending entry idle this long is reclaimed from its (presumed dead) consumer */
    claimIdleMs: number
    /** deliveries after which an entry that keeps failing goes to the dead-letter stream */
    maxAttempts: number
    /** persist a win only once it is this old (≥ 2000 with AOF everysec: see docs) */
    persistDelayMs: number
    /** with no backlog, wait this long after a pass, so a trickle of wins is batched */
    lingerMs: number
  }
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code = 'CONFIG_INVALID'
}

type Env = Record<string, string | undefined>

const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
]

function str(env: Env, name: string): string | null {
  const v = env[name]?.trim()
  return v ? v : null
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = str(env, name)
  if (raw === null) return fallback
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got "${raw}"`)
  const n = Number(raw)
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}`)
  return n
}

/**
 * How many proxies in front of the service add to X-Forwarded-For (0: none,
 * the socket's address is the client's). `true` is one. The client is the
 * address that many from the right: what the client itself wrote to the left
 * of it is not trusted.
 */
function proxyHops(env: Env, name: string): number {
  const raw = str(env, name)?.toLowerCase()
  if (raw === undefined || raw === 'false' || raw === 'no') return 0
  if (raw === 'true' || raw === 'yes') return 1
  if (/^[0-9]{1,2}$/.test(raw)) return Number(raw)
  throw new ConfigError(`${name} must be true, false or how many proxies add X-Forwarded-For`)
}

function bool(env: Env, name: string): boolean {
  const raw = str(env, name)?.toLowerCase()
  if (raw === undefined || raw === 'false' || raw === '0' || raw === 'no') return false
  if (raw === 'true' || raw === '1' || raw === 'yes') return true
  throw new ConfigError(`${name} must be true or false`)
}

export function dialectOf(databaseUrl: string): Dialect {
  const scheme = databaseUrl.slice(0, databaseUrl.indexOf(':')).toLowerCase()
  if (scheme === 'sqlite' || scheme === 'file') return 'sqlite'
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres'
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql'
  throw new ConfigError(
    'DATABASE_URL must start with sqlite:, postgres:, postgresql:, mysql: or mariadb:',
  )
}

function hostPorts(name: string, raw: string): RedisNode[] {
  return raw.split(',').map((part) => {
    const m = /^\s*\[?([^\]\s]+?)\]?:(\d{1,5})\s*$/.exec(part)
    const port = Number(m?.[2])
    if (!m?.[1] || port < 1 || port > 65535) {
      throw new ConfigError(`${name} must be host:port,host:port…, got "${part}"`)
    }
    return { host: m[1], port }
  })
}

function sentinels(env: Env, clusterNodes: string | null): RedisConfig['sentinels'] {
  const raw = str(env, 'REDIS_SENTINELS')
  const name = str(env, 'REDIS_SENTINEL_NAME')
  if (!raw && !name) return null
  if (!raw) throw new ConfigError('REDIS_SENTINEL_NAME needs REDIS_SENTINELS')
  if (!name) {
    throw new ConfigError(
      'REDIS_SENTINELS needs REDIS_SENTINEL_NAME (the master the sentinels watch)',
    )
  }
  if (clusterNodes) throw new ConfigError('set REDIS_SENTINELS or REDIS_CLUSTER_NODES, not both')
  return { nodes: hostPorts('REDIS_SENTINELS', raw), name }
}

function redisConfig(env: Env): RedisConfig | null {
  const url = str(env, 'REDIS_URL')
  const nodes = str(env, 'REDIS_CLUSTER_NODES')
  const sentinel = sentinels(env, nodes)
  if (!url && !nodes && !sentinel) return null
  if (url && !/^rediss?:\/\//i.test(url)) {
    throw new ConfigError('REDIS_URL must start with redis:// or rediss://')
  }
  const keyPrefix = str(env, 'REDIS_KEY_PREFIX') ?? 'fc:'
  if (/[{}\s]/.test(keyPrefix)) {
    throw new ConfigError('REDIS_KEY_PREFIX must not contain braces or spaces')
  }
  return {
    url: nodes ? null : url,
    clusterNodes: nodes ? hostPorts('REDIS_CLUSTER_NODES', nodes) : null,
    sentinels: sentinel,
    keyPrefix,
    commandTimeoutMs: int(env, 'REDIS_COMMAND_TIMEOUT_MS', 1000, 50, 60_000),
    clockSkewBoundMs: int(env, 'CLOCK_SKEW_BOUND_MS', 500, 1, 3_600_000),
  }
}

function httpLimits(env: Env): HttpLimits {
  const requestTimeoutMs = int(env, 'REQUEST_TIMEOUT_MS', 10_000, 100, 3_600_000)
  const headersTimeoutMs = int(env, 'HEADERS_TIMEOUT_MS', 5_000, 100, 3_600_000)
  // node:http refuses a headers timeout beyond the request's.
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError('HEADERS_TIMEOUT_MS must not exceed REQUEST_TIMEOUT_MS')
  }
  const maxConnections = int(env, 'MAX_CONNECTIONS', 0, 0, 10_000_000)
  return {
    requestTimeoutMs,
    headersTimeoutMs,
    keepAliveTimeoutMs: int(env, 'KEEP_ALIVE_TIMEOUT_MS', 72_000, 100, 3_600_000),
    maxConnections: maxConnections === 0 ? null : maxConnections,
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 3_600_000),
    queueTimeoutMs: int(env, 'QUEUE_TIMEOUT_MS', 0, 0, 3_600_000),
  }
}

function jwtConfig(env: Env): Config['jwt'] {
  const secret = str(env, 'JWT_SECRET')
  const publicKey = str(env, 'JWT_PUBLIC_KEY')
  if (secret && publicKey) throw new ConfigError('set JWT_SECRET or JWT_PUBLIC_KEY, not both')
  if (secret) {
    if (secret.length < 32) throw new ConfigError('JWT_SECRET must be at least 32 characters')
    return { secret }
  }
  if (publicKey) return { publicKey: publicKey.replace(/\\n/g, '\n') }
  return null
}

function publicUrl(env: Env): string | null {
  const raw = str(env, 'PUBLIC_URL')
  if (raw === null) return null
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(`PUBLIC_URL must be an http:// or https:// URL, got "${raw}"`)
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    throw new ConfigError(`PUBLIC_URL must be an http:// or https:// URL, got "${raw}"`)
  }
  return url.href.replace(/\/+$/, '')
}

function eventsConfig(env: Env): EventsConfig {
  const hosts = str(env, 'WEBHOOK_ALLOWED_HOSTS')
  return {
    allowedHosts:
      hosts === null
        ? null
        : hosts
            .split(',')
            .map((h) => h.trim().toLowerCase())
            .filter((h) => h !== ''),
    webhooks: {
      timeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 600_000),
      retryForMs: int(env, 'WEBHOOK_RETRY_FOR_MS', 86_400_000, 1000, 30 * 86_400_000),
      retryBaseMs: int(env, 'WEBHOOK_RETRY_BASE_MS', 1000, 10, 3_600_000),
      retryMaxMs: int(env, 'WEBHOOK_RETRY_MAX_MS', 3_600_000, 10, 86_400_000),
    },
    leaseMs: int(env, 'EVENTS_LEASE_MS', 15_000, 500, 600_000),
    tickMs: int(env, 'EVENTS_TICK_MS', 100, 5, 60_000),
    pump: str(env, 'EVENTS_PUMP') === null ? true : bool(env, 'EVENTS_PUMP'),
  }
}

export function loadConfig(env: Env): Readonly<Config> {
  const databaseUrl = str(env, 'DATABASE_URL') ?? 'sqlite:./data/firstcome.sqlite'
  const logLevel = (str(env, 'LOG_LEVEL') ?? 'info').toLowerCase() as LogLevel
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`)
  }
  const rate = int(env, 'RATE_LIMIT_PER_IP', 0, 0, 1_000_000)
  const ratePerUser = int(env, 'RATE_LIMIT_PER_USER', 0, 0, 1_000_000)
  const adminToken = str(env, 'ADMIN_TOKEN')
  const redis = redisConfig(env)
  const apiProcesses = int(env, 'API_PROCESSES', 1, 1, 256)
  if (apiProcesses > 1 && !redis) {
    throw new ConfigError(
      'API_PROCESSES > 1 needs Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): the embedded gate holds its stock in one process',
    )
  }
  const events = eventsConfig(env)
  if (!events.pump && !redis) {
    throw new ConfigError(
      'EVENTS_PUMP=false needs Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES) and a `firstcome worker` to pump the events: in embedded mode no other process would sequence them or deliver webhooks',
    )
  }
  const dbTimeouts: DbTimeouts = {
    statementMs: int(env, 'DB_STATEMENT_TIMEOUT_MS', 30_000, 100, 3_600_000),
    lockMs: int(env, 'DB_LOCK_TIMEOUT_MS', 3000, 100, 3_600_000),
    idleTransactionMs: int(env, 'DB_IDLE_TRANSACTION_TIMEOUT_MS', 10_000, 1000, 3_600_000),
    connectMs: int(env, 'DB_CONNECT_TIMEOUT_MS', 3000, 100, 600_000),
  }
  const config: Config = {
    port: int(env, 'PORT', 8080, 0, 65535),
    metricsPort: int(env, 'METRICS_PORT', 9464, 0, 65535),
    host: str(env, 'HOST') ?? '0.0.0.0',
    publicUrl: publicUrl(env),
    apiProcesses,
    listenBacklog: int(env, 'LISTEN_BACKLOG', 8192, 1, 1_000_000),
    http: httpLimits(env),
    heapGrowingPercent: int(env, 'HEAP_GROWING_PERCENT', 30, 0, 1000),
    trustProxy: proxyHops(env, 'TRUST_PROXY'),
    databaseUrl,
    dialect: dialectOf(databaseUrl),
    dbPoolSize: int(env, 'DB_POOL_SIZE', 10, 1, 1000),
    dbReadPoolSize: int(env, 'DB_READ_POOL_SIZE', 4, 1, 1000),
    dbTimeouts,
    dbReadTimeouts: {
      ...dbTimeouts,
      statementMs: int(env, 'DB_READ_STATEMENT_TIMEOUT_MS', 5000, 100, 3_600_000),
    },
    redis,
    adminToken: adminToken ?? randomBytes(18).toString('base64url'),
    adminTokenGenerated: adminToken === null,
    serviceToken: str(env, 'SERVICE_TOKEN'),
    jwt: jwtConfig(env),
    rateLimitPerIp: rate === 0 ? null : rate,
    rateLimitPerUser: ratePerUser === 0 ? null : ratePerUser,
    logLevel,
    drawLeaseMs: int(env, 'DRAW_LEASE_MS', 10_000, 300, 600_000),
    events,
    worker: {
      batchSize: int(env, 'WORKER_BATCH_SIZE', 1000, 1, 10_000),
      txRows: int(env, 'WORKER_TX_ROWS', 10_000, 1, 1_000_000),
      claimIdleMs: int(env, 'WORKER_CLAIM_IDLE_MS', 30_000, 100, 3_600_000),
      maxAttempts: int(env, 'WORKER_MAX_ATTEMPTS', 5, 1, 1000),
      persistDelayMs: int(env, 'WORKER_PERSIST_DELAY_MS', 0, 0, 60_000),
      lingerMs: int(env, 'WORKER_LINGER_MS', 20, 0, 10_000),
    },
  }
  return Object.freeze(config)
}
