/**
 * Redis under Sentinel, of a test's own: a master, a replica of it, and three
 * `redis-sentinel` processes watching the master (quorum 2), on free loopback
 * ports, with down-after-milliseconds and failover-timeout short enough for a
 * test. `stop()` kills all of it and removes the sentinels' directory.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, type RedisServer, startRedisServer } from './redis-server.js'
import { IN_CI } from './services.js'
import { TcpProxy } from './tcp-proxy.js'
import { waitFor } from './wait.js'

export interface SentinelGroupOptions {
  /** the master's name the sentinels know (REDIS_SENTINEL_NAME) */
  name?: string
  /** a master silent this long is down for a sentinel */
  downAfterMs?: number
  failoverTimeoutMs?: number
  /**
   * The replica replicates through a TCP proxy (`replicaLink`), to be cut while
   * the master goes on: a replica held behind. The sentinels would point it back
   * at the master itself (+fix-slave-config) after failoverTimeoutMs: keep that
   * longer than the test.
   */
  replicaLink?: boolean
}

export interface SentinelGroup {
  readonly name: string
  /** REDIS_SENTINELS: host:port of each sentinel */
  readonly spec: string
  readonly master: RedisServer
  readonly replica: RedisServer
  /** with `replicaLink`: the proxy the replica replicates through */
  readonly replicaLink: TcpProxy | null
  readonly sentinelPorts: number[]
  /** the sentinels' configuration files and logs */
  readonly dir: string
  /** The port of the master the sentinels name now. */
  masterPort(): Promise<number>
  /** INFO replication of the node on `port`, as field → value. */
  replication(port: number): Promise<Map<string, string>>
  stop(): Promise<void>
}

/** `false` when redis-sentinel can be started here; otherwise why the test skips. */
export function skipUnlessRedisSentinel(): string | false {
  const probe = spawnSync('redis-sentinel', ['--version'], { encoding: 'utf8' })
  if (probe.status === 0) return false
  if (IN_CI) return false
  return 'redis-sentinel is not installed (needed to fail a master over)'
}

async function query<T>(port: number, run: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 })
  c.on('error', () => {})
  try {
    await c.connect()
    return await run(c)
  } finally {
    c.disconnect()
  }
}

function fields(text: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':')
    if (at > 0) map.set(line.slice(0, at), line.slice(at + 1))
  }
  return map
}

export async function startSentinelGroup(o: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const name = o.name ?? 'firstcome'
  const dir = mkdtempSync(join(tmpdir(), 'firstcome-sentinel-'))
  const sentinels: ChildProcess[] = []
  const servers: RedisServer[] = []
  let link: TcpProxy | null = null
  const stop = async () => {
    await link?.close()
    for (const s of sentinels) s.kill('SIGKILL')
    await Promise.all(
      sentinels.map((s) =>
        s.exitCode !== null || s.signalCode !== null
          ? undefined
          : new Promise((resolve) => s.once('exit', resolve)),
      ),
    )
    for (const s of servers) await s.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const master = await startRedisServer()
    servers.push(master)
    let upstream = master.port
    if (o.replicaLink) {
      link = new TcpProxy('127.0.0.1', master.port)
      upstream = await link.start(await freePort())
    }
    const replica = await startRedisServer({
      args: ['--replicaof', '127.0.0.1', String(upstream)],
    })
    servers.push(replica)
    const replication = (port: number) =>
      query(port, async (c) => fields(await c.info('replication')))
    await waitFor(
      'the replica to be in sync',
      async () => (await replication(replica.port)).get('master_link_status') === 'up',
      20_000,
    )
    const ports: number[] = []
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      ports.push(port)
      const conf = join(dir, `sentinel-${port}.conf`)
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'daemonize no',
          `dir ${dir}`,
          `logfile ${join(dir, `sentinel-${port}.log`)}`,
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${o.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} ${o.failoverTimeoutMs ?? 5000}`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      )
      sentinels.push(spawn('redis-sentinel', [conf], { stdio: 'ignore' }))
    }
    // Ready: every sentinel knows the replica and the two other sentinels.
    for (const port of ports) {
      await waitFor(
        `sentinel ${port} to know the replica and the other sentinels`,
        () =>
          query(port, async (c) => {
            const info = (await c.call('SENTINEL', 'MASTER', name)) as string[]
            const m = new Map<string, string>()
            for (let i = 0; i + 1 < info.length; i += 2) m.set(String(info[i]), String(info[i + 1]))
            return m.get('num-slaves') === '1' && m.get('num-other-sentinels') === '2'
          }),
        30_000,
        100,
      )
    }
    return {
      name,
      spec: ports.map((p) => `127.0.0.1:${p}`).join(','),
      master,
      replica,
      replicaLink: link,
      sentinelPorts: ports,
      dir,
      async masterPort() {
        for (const port of ports) {
          try {
            const addr = await query(
              port,
              (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name) as Promise<string[]>,
            )
            return Number(addr[1])
          } catch {
            // that sentinel is not answering: ask the next
          }
        }
        throw new Error('no sentinel answered')
      },
      replication,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
