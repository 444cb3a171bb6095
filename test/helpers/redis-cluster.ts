/**
 * A throw-away Redis Cluster on free loopback ports, each node a redis-server
 * process this test starts from `--cluster-enabled yes` in a directory of its
 * own: three masters, and optionally a replica of each, with AOF. A node can be
 * killed (-9) and restarted on the same port, directory and nodes.conf, so it
 * rejoins the cluster it left. `stop()` kills every node and removes the files.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { loadConfig } from '../../src/config.js'
import { connectRedis, createRedis, type RedisClient } from '../../src/redis/connection.js'
import { bindable, freePort } from './redis-server.js'

export interface ClusterOptions {
  /** a replica per master (default 0) */
  replicas?: 0 | 1
  /** `--appendonly yes` (everysec) on every node (default no) */
  aof?: boolean
  /** `cluster-node-timeout`, ms: how long a node may be silent before failover (default 15000) */
  nodeTimeoutMs?: number
}

export interface ClusterNode {
  host: string
  port: number
  dir: string
}

export interface TestCluster {
  /** every node, masters and replicas, in start order */
  nodes: ClusterNode[]
  /** REDIS_CLUSTER_NODES value */
  spec: string
  /** SIGKILL the node on `port`: no shutdown, no final write */
  kill(port: number): Promise<void>
  /** Starts the node on `port` again, with its directory and nodes.conf. */
  restart(port: number): Promise<void>
  /** `redis-cli -p port <args>` on a live node, its output trimmed */
  cli(port: number, ...args: string[]): string
  /** A plain client to one node (not cluster-aware), closed on stop. */
  client(port: number): Redis
  /** the hash slot of `key` (CLUSTER KEYSLOT, asked of a live node) */
  slotOf(key: string): number
  /** port of the master serving `slot` now, as a live node sees it */
  masterOf(slot: number): number
  stop(): Promise<void>
}

/** Cluster ports need port + 10000 free too (the bus); retry on a clash. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (await bindable(port + 10_000)) return port
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

function cli(port: number, ...args: string[]): string {
  const r = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' })
  return `${r.stdout ?? ''}`.trim()
}

/** Parses CLUSTER NODES: id, port, flags, master id, slot ranges */
export function clusterNodes(text: string) {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id = '', address = '', flags = '', master = '', , , , , ...slots] = line.split(' ')
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)?.[1] ?? 0),
        flags: flags.split(','),
        master,
        slots: slots.filter((s) => !s.startsWith('[')),
      }
    })
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const root = mkdtempSync(join(tmpdir(), 'firstcome-cluster-'))
  const running = new Map<number, ChildProcess>()
  const clients: Redis[] = []
  const nodes: ClusterNode[] = []
  const count = 3 * (1 + (options.replicas ?? 0))

  const launch = (node: ClusterNode) => {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(node.port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(node.dir, 'nodes.conf'),
        '--cluster-node-timeout',
        String(options.nodeTimeoutMs ?? 15_000),
        '--dir',
        node.dir,
        '--logfile',
        join(node.dir, 'redis.log'),
        '--save',
        '',
        '--appendonly',
        options.aof ? 'yes' : 'no',
      ],
      { stdio: 'ignore' },
    )
    running.set(node.port, child)
  }
  const waitPong = async (port: number) => {
    for (let i = 0; cli(port, 'ping') !== 'PONG'; i++) {
      if (i > 200) throw new Error(`redis-server on ${port} did not start`)
      await sleep(50)
    }
  }
  const kill = async (port: number) => {
    const child = running.get(port)
    if (!child) return
    running.delete(port)
    child.kill('SIGKILL')
    await exited(child)
  }
  const stop = async () => {
    for (const c of clients.splice(0)) c.disconnect()
    await Promise.all([...running.keys()].map(kill))
    rmSync(root, { recursive: true, force: true })
  }
  const live = () => {
    const port = [...running.keys()][0]
    if (port === undefined) throw new Error('no cluster node is running')
    return port
  }

  try {
    for (let i = 0; i < count; i++) {
      const port = await clusterPort()
      const dir = join(root, String(port))
      mkdirSync(dir)
      const node = { host: '127.0.0.1', port, dir }
      nodes.push(node)
      launch(node)
    }
    for (const { port } of nodes) await waitPong(port)
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${n.host}:${n.port}`),
        '--cluster-replicas',
        String(options.replicas ?? 0),
        '--cluster-yes',
      ],
      { encoding: 'utf8' },
    )
    if (create.status !== 0)
      throw new Error(`cluster create failed: ${create.stdout}${create.stderr}`)
    // Every node, not only the first: a client's ready check asks any one of them,
    // and ioredis's Cluster.connect() never settles when that check fails.
    for (const { port } of nodes) {
      for (let i = 0; ; i++) {
        if (cli(port, 'cluster', 'info').includes('cluster_state:ok')) break
        if (i > 200) throw new Error(`cluster node ${port} did not become ok`)
        await sleep(50)
      }
    }
    // Replicas report ok before their first sync; wait until each is in sync.
    for (const { port } of nodes) {
      for (let i = 0; ; i++) {
        const role = cli(port, 'role').split('\n')
        if (role[0] === 'master' || role[3] === 'connected') break
        if (i > 200) throw new Error(`replica ${port} did not sync`)
        await sleep(50)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }

  return {
    nodes,
    spec: nodes.map((n) => `${n.host}:${n.port}`).join(','),
    kill,
    async restart(port) {
      const node = nodes.find((n) => n.port === port)
      if (!node) throw new Error(`no node on ${port}`)
      if (running.has(port)) throw new Error(`node ${port} is running`)
      launch(node)
      await waitPong(port)
    },
    cli,
    client(port) {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 })
      c.on('error', () => {}) // nodes are killed on purpose
      clients.push(c)
      return c
    },
    slotOf(key) {
      return Number(cli(live(), 'cluster', 'keyslot', key))
    },
    masterOf(slot) {
      for (const n of clusterNodes(cli(live(), 'cluster', 'nodes'))) {
        if (!n.flags.includes('master') || n.flags.includes('fail')) continue
        for (const range of n.slots) {
          const [from, to = from] = range.split('-').map(Number)
          if (from !== undefined && slot >= from && slot <= (to ?? from)) return n.port
        }
      }
      throw new Error(`no live master serves slot ${slot}`)
    },
    stop,
  }
}

/** The service's own client to `cluster` (REDIS_CLUSTER_NODES), connected. */
export async function serviceClient(cluster: TestCluster): Promise<RedisClient> {
  const config = loadConfig({ REDIS_CLUSTER_NODES: cluster.spec })
  if (!config.redis) throw new Error('no redis config')
  const client = createRedis(config.redis, 'firstcome-test')
  await connectRedis(client)
  return client
}
