/**
 * ioredis clients for a single node or a cluster, with the options the issue path
 * depends on: auto-pipelining (concurrent requests share round trips) and a bound
 * on every command, so an unreachable Redis turns into a 503 instead of a hang.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { RedisConfig } from '../config.js'

export type RedisClient = Redis | Cluster

const CONNECT_TIMEOUT_MS = 15_000

function baseOptions(config: RedisConfig): RedisOptions {
  return {
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: Math.max(1000, config.commandTimeoutMs),
    // A command issued while reconnecting fails at once instead of queueing: the
    // client gets 503 + Retry-After and the service resumes when Redis is back.
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(50 * attempt, 1000),
    lazyConnect: true,
  }
}

export function createRedis(config: RedisConfig, name: string): RedisClient {
  const options = { ...baseOptions(config), connectionName: name }
  const client = config.clusterNodes
    ? new Cluster(config.clusterNodes, {
        redisOptions: options,
        enableAutoPipelining: true,
        lazyConnect: true,
        clusterRetryStrategy: (attempt) => Math.min(100 * attempt, 2000),
      })
    : new Redis(config.url ?? 'redis://127.0.0.1:6379', options)
  // Without a listener ioredis prints every failed reconnect, with its stack, to
  // stderr (past the JSON logger), several times a second per connection while
  // Redis is down. The failure is reported where it matters: requests answer 503,
  // /readyz names redis, and the worker logs its failed passes.
  client.on('error', () => {})
  return client
}

/** Connects and waits until the client is ready (or throws: refused, or not ready in time). */
export function connectRedis(client: RedisClient, timeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown) => {
      clearTimeout(timer)
      client.off('ready', onReady)
      if (err) reject(err)
      else resolve()
    }
    const onReady = () => done()
    const timer = setTimeout(() => done(new Error(`not ready after ${timeoutMs} ms`)), timeoutMs)
    client.once('ready', onReady)
    client.connect().then(onReady, (err: unknown) => {
      // A cluster whose first readiness check fails (still forming, failing over)
      // retries by itself but never settles connect(): wait for 'ready' instead.
      if (!(client instanceof Cluster)) done(err)
    })
  })
}

export function isReady(client: RedisClient): boolean {
  return client.status === 'ready'
}
