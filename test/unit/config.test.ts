import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError, loadConfig } from '../../src/config.js'
import { connectionCap } from '../../src/http/server.js'

describe('loadConfig', () => {
  it('defaults to the embedded mode on SQLite with a generated admin token', () => {
    const c = loadConfig({})
    assert.equal(c.port, 8080)
    assert.equal(c.host, '0.0.0.0')
    assert.equal(c.publicUrl, null)
    assert.equal(c.dialect, 'sqlite')
    assert.equal(c.databaseUrl, 'sqlite:./data/firstcome.sqlite')
    assert.equal(c.redis, null)
    assert.equal(c.jwt, null)
    assert.equal(c.rateLimitPerIp, null)
    assert.equal(c.rateLimitPerUser, null)
    assert.equal(c.heapGrowingPercent, 30)
    assert.equal(c.worker.lingerMs, 20)
    assert.equal(c.dbPoolSize, 10)
    assert.equal(c.dbReadPoolSize, 4)
    assert.deepEqual(c.dbTimeouts, {
      statementMs: 30_000,
      lockMs: 3000,
      idleTransactionMs: 10_000,
      connectMs: 3000,
    })
    assert.deepEqual(c.dbReadTimeouts, { ...c.dbTimeouts, statementMs: 5000 })
    assert.equal(c.adminTokenGenerated, true)
    assert.ok(c.adminToken.length >= 20)
    assert.notEqual(loadConfig({}).adminToken, c.adminToken)
    assert.ok(Object.isFrozen(c))
  })

  it('reads every documented variable', () => {
    const c = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      PUBLIC_URL: 'https://coupons.example.com/',
      DATABASE_URL: 'postgres://u@h/db',
      REDIS_URL: 'redis://127.0.0.1:6379/2',
      ADMIN_TOKEN: 'secret-admin',
      JWT_SECRET: 'x'.repeat(32),
      RATE_LIMIT_PER_IP: '20',
      RATE_LIMIT_PER_USER: '3',
      LOG_LEVEL: 'warn',
      HEAP_GROWING_PERCENT: '0',
      WORKER_LINGER_MS: '0',
      DB_POOL_SIZE: '20',
      DB_READ_POOL_SIZE: '2',
      DB_STATEMENT_TIMEOUT_MS: '8000',
      DB_READ_STATEMENT_TIMEOUT_MS: '2000',
      DB_LOCK_TIMEOUT_MS: '1000',
      DB_IDLE_TRANSACTION_TIMEOUT_MS: '30000',
      DB_CONNECT_TIMEOUT_MS: '500',
    })
    assert.equal(c.port, 9000)
    assert.equal(c.publicUrl, 'https://coupons.example.com')
    assert.equal(c.dbPoolSize, 20)
    assert.equal(c.dbReadPoolSize, 2)
    assert.deepEqual(c.dbTimeouts, {
      statementMs: 8000,
      lockMs: 1000,
      idleTransactionMs: 30_000,
      connectMs: 500,
    })
    assert.deepEqual(c.dbReadTimeouts, { ...c.dbTimeouts, statementMs: 2000 })
    assert.equal(c.worker.lingerMs, 0)
    assert.equal(c.heapGrowingPercent, 0)
    assert.equal(c.dialect, 'postgres')
    assert.equal(c.redis?.url, 'redis://127.0.0.1:6379/2')
    assert.equal(c.redis?.keyPrefix, 'fc:')
    assert.equal(c.adminToken, 'secret-admin')
    assert.equal(c.adminTokenGenerated, false)
    assert.deepEqual(c.jwt, { secret: 'x'.repeat(32) })
    assert.equal(c.rateLimitPerIp, 20)
    assert.equal(c.rateLimitPerUser, 3)
    assert.equal(c.logLevel, 'warn')
  })

  it('bounds every phase of a connection, with defaults', () => {
    assert.deepEqual(loadConfig({}).http, {
      requestTimeoutMs: 10_000,
      headersTimeoutMs: 5_000,
      keepAliveTimeoutMs: 72_000,
      maxConnections: null,
      shutdownGraceMs: 10_000,
      queueTimeoutMs: 0,
    })
    const c = loadConfig({
      REQUEST_TIMEOUT_MS: '3000',
      HEADERS_TIMEOUT_MS: '2000',
      KEEP_ALIVE_TIMEOUT_MS: '4000',
      MAX_CONNECTIONS: '500',
      SHUTDOWN_GRACE_MS: '0',
      QUEUE_TIMEOUT_MS: '250',
    })
    assert.deepEqual(c.http, {
      requestTimeoutMs: 3000,
      headersTimeoutMs: 2000,
      keepAliveTimeoutMs: 4000,
      maxConnections: 500,
      shutdownGraceMs: 0,
      queueTimeoutMs: 250,
    })
  })

  it('caps connections below the descriptor limit unless MAX_CONNECTIONS says otherwise', () => {
    assert.equal(connectionCap({ maxConnections: 42 }, 1024), 42)
    assert.equal(connectionCap({ maxConnections: null }, 1024), 896)
    assert.equal(connectionCap({ maxConnections: null }, 256), 128)
    assert.equal(connectionCap({ maxConnections: null }, null), null)
  })

  it('knows every database scheme', () => {
    assert.equal(loadConfig({ DATABASE_URL: 'postgresql://h/db' }).dialect, 'postgres')
    assert.equal(loadConfig({ DATABASE_URL: 'mysql://root@h/db' }).dialect, 'mysql')
    assert.equal(loadConfig({ DATABASE_URL: 'mariadb://root@h/db' }).dialect, 'mysql')
    assert.equal(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).dialect, 'sqlite')
  })

  it('reads the events settings, with defaults', () => {
    const d = loadConfig({}).events
    assert.deepEqual(d, {
      allowedHosts: null,
      webhooks: {
        timeoutMs: 10_000,
        retryForMs: 86_400_000,
        retryBaseMs: 1000,
        retryMaxMs: 3_600_000,
      },
      leaseMs: 15_000,
      tickMs: 100,
      pump: true,
    })
    const c = loadConfig({
      WEBHOOK_ALLOWED_HOSTS: ' Hooks.Example.com, *.shop.example ,',
      WEBHOOK_TIMEOUT_MS: '2500',
      EVENTS_PUMP: 'false',
      REDIS_URL: 'redis://127.0.0.1:6379/0',
    }).events
    assert.deepEqual(c.allowedHosts, ['hooks.example.com', '*.shop.example'])
    assert.equal(c.webhooks.timeoutMs, 2500)
    assert.equal(c.pump, false)
    assert.throws(() => loadConfig({ EVENTS_PUMP: 'maybe' }), /EVENTS_PUMP/)
    // Embedded mode has no worker process to pump the events instead.
    assert.throws(() => loadConfig({ EVENTS_PUMP: 'false' }), /EVENTS_PUMP=false needs Redis/)
    assert.throws(() => loadConfig({ WEBHOOK_TIMEOUT_MS: '0' }), /WEBHOOK_TIMEOUT_MS/)
  })

  it('parses cluster nodes, which take precedence over REDIS_URL', () => {
    const c = loadConfig({
      REDIS_CLUSTER_NODES: '127.0.0.1:7000, 127.0.0.1:7001',
      REDIS_URL: 'redis://x',
    })
    assert.deepEqual(c.redis?.clusterNodes, [
      { host: '127.0.0.1', port: 7000 },
      { host: '127.0.0.1', port: 7001 },
    ])
    assert.equal(c.redis?.url, null)
  })

  it('parses sentinels and the master name; a REDIS_URL beside them stays for its password and db', () => {
    const c = loadConfig({
      REDIS_SENTINELS: 'sentinel-a:26379, 10.0.0.2:26380,[::1]:26381',
      REDIS_SENTINEL_NAME: 'firstcome',
      REDIS_URL: 'redis://:secret@ignored:6379/3',
    })
    assert.deepEqual(c.redis?.sentinels, {
      nodes: [
        { host: 'sentinel-a', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'firstcome',
    })
    assert.equal(c.redis?.url, 'redis://:secret@ignored:6379/3')
    assert.equal(c.redis?.clusterNodes, null)
    const alone = loadConfig({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' })
    assert.equal(alone.redis?.url, null, 'sentinels alone are Redis mode')
    assert.equal(loadConfig({ REDIS_URL: 'redis://x' }).redis?.sentinels, null)
  })

  it('names the bad variable', () => {
    const bad: Record<string, string>[] = [
      { PORT: 'eighty' },
      { PORT: '70000' },
      { DATABASE_URL: 'oracle://x' },
      { REDIS_URL: 'http://x' },
      { REDIS_CLUSTER_NODES: 'nohost' },
      { REDIS_SENTINELS: 's:26379' },
      { REDIS_SENTINEL_NAME: 'm' },
      { REDIS_SENTINEL_NAME: 'm', REDIS_SENTINELS: 's:0' },
      { REDIS_SENTINEL_NAME: 'm', REDIS_SENTINELS: 's' },
      { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm', REDIS_CLUSTER_NODES: 'n:7000' },
      { RATE_LIMIT_PER_IP: '-3' },
      { RATE_LIMIT_PER_USER: 'x' },
      { LOG_LEVEL: 'loud' },
      { JWT_SECRET: 'short' },
      { JWT_SECRET: 'x'.repeat(32), JWT_PUBLIC_KEY: 'k' },
      { REDIS_URL: 'redis://x', REDIS_KEY_PREFIX: 'a{b}' },
      { TRUST_PROXY: 'maybe' },
      { TRUST_PROXY: '-1' },
      { DB_READ_POOL_SIZE: '0' },
      { DB_STATEMENT_TIMEOUT_MS: '5s' },
      { DB_IDLE_TRANSACTION_TIMEOUT_MS: '10' },
      { REQUEST_TIMEOUT_MS: '5' },
      { REQUEST_TIMEOUT_MS: '1000', HEADERS_TIMEOUT_MS: '2000' },
      { MAX_CONNECTIONS: 'many' },
      { PUBLIC_URL: 'localhost:18080' },
      { PUBLIC_URL: 'ftp://host/' },
    ]
    for (const env of bad) {
      const name = Object.keys(env).at(-1) as string
      assert.throws(
        () => loadConfig(env),
        (err: unknown) =>
          err instanceof ConfigError && (err.message.includes(name) || err.message.includes('JWT')),
        JSON.stringify(env),
      )
    }
  })
})
