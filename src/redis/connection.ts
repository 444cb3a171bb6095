/**
 * ioredis clients for a single node, a cluster, or the master that Redis Sentinel
 * names, with the options the issue path depends on: auto-pipelining (concurrent
 * requests share round trips) and a bound on every command, so an unreachable
 * Redis turns into a 503 instead of a hang.
 *
 * With Sentinel, ioredis asks the sentinels for the master on every (re)connect;
 * after a failover the old master's connection is closed (it died, or the
 * sentinels, turning it into a replica, closed its clients; a write that still
 * reaches a replica is refused with READONLY and reconnects too), and the client
 * reconnects to the master the sentinels name.
 * Commands in the meantime fail fast like any other reconnect (503 + Retry-After).
 */
import { Cluster, type Command, Redis, type RedisOptions } from 'ioredis'
import type { WriteableStream } from 'ioredis/built/types.js'
import type { RedisConfig } from '../config.js'
import { redirectOf } from './errors.js'

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

function sentinelOptions(config: RedisConfig): RedisOptions {
  if (!config.sentinels) return {}
  return {
    sentinels: config.sentinels.nodes,
    name: config.sentinels.name,
    role: 'master',
    // A sentinel that does not answer is skipped for the next one quickly.
    sentinelCommandTimeout: Math.max(500, config.commandTimeoutMs),
    sentinelRetryStrategy: (attempt) => Math.min(100 * attempt, 1000),
    // No failoverDetector: its +switch-master can close the connector while it
    // is connecting to the dead master, which ends the client for good (status
    // `end`, no more reconnects). A dead master breaks the connection anyway, and
    // the sentinels close the clients of a master they demote.
    // Reconnect when a write reaches a node that has become a replica.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
  }
}

/**
 * A Cluster that reloads its slot map as soon as a MOVED reaches a caller.
 * ioredis follows MOVED and ASK for a command sent on its own; but a batch of
 * the auto-pipeline (the commands of one node, whatever their slots) in which
 * another command went through hands the redirect to its caller, and leaves
 * the slot map as it was (ioredis#2075). ioredis reloads it on no timer of its
 * own, so the moved slot's later batches would go on meeting MOVED for as long
 * as they are mixed with other slots' commands. The caller still gets this one
 * (a script sends itself again: LuaScript). ASK leaves the slot where it is:
 * nothing to reload.
 */
export class ReroutingCluster extends Cluster {
  override sendCommand(command: Command, stream?: WriteableStream, node?: unknown): unknown {
    const sent = super.sendCommand(command, stream, node)
    // `node`: a pipeline's command, whose redirect ioredis may hand over.
    if (node !== undefined) {
      command.promise.catch((err: unknown) => {
        if (redirectOf(err) === 'MOVED') this.refreshSlotsCache()
      })
    }
    return sent
  }
}

export function createRedis(config: RedisConfig, name: string): RedisClient {
  const options = { ...baseOptions(config), connectionName: name, ...sentinelOptions(config) }
  const client = config.clusterNodes
    ? new ReroutingCluster(config.clusterNodes, {
        redisOptions: options,
        enableAutoPipelining: true,
        lazyConnect: true,
        clusterRetryStrategy: (attempt) => Math.min(100 * attempt, 2000),
      })
    : config.sentinels
      ? // With a REDIS_URL beside the sentinels, its user, password and db apply.
        config.url
        ? new Redis(config.url, options)
        : new Redis(options)
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

/** Connects every client, or none: on a failure each is disconnected and the error thrown. */
export async function connectAll(clients: RedisClient[]): Promise<void> {
  try {
    await Promise.all(clients.map((c) => connectRedis(c)))
  } catch (err) {
    for (const c of clients) c.disconnect()
    throw new Error('cannot connect to Redis', { cause: err })
  }
}

/** Closes the client: politely (QUIT) when Redis answers, else at once. */
export async function closeRedis(client: RedisClient): Promise<void> {
  await client.quit().catch(() => client.disconnect())
}

export function isReady(client: RedisClient): boolean {
  return client.status === 'ready'
}
