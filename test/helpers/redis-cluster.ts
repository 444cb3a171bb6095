/**
 * A throw-away Redis Cluster of three masters on free loopback ports, each a
 * redis-server process this test starts and stops.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './redis-server.js'

export interface TestCluster {
  nodes: { host: string; port: number }[]
  /** REDIS_CLUSTER_NODES value */
  spec: string
  stop(): Promise<void>
}

/** Cluster ports need port + 10000 free too (the bus); retry on a clash. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port < 55_000) return port
  }
}

export async function startCluster(): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'firstcome-cluster-'))
  const processes: ChildProcess[] = []
  const nodes: { host: string; port: number }[] = []
  const stop = async () => {
    for (const p of processes) p.kill('SIGKILL')
    await sleep(50)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < 3; i++) {
      const port = await clusterPort()
      const p = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore' },
      )
      processes.push(p)
      nodes.push({ host: '127.0.0.1', port })
    }
    for (const { port } of nodes) {
      for (
        let i = 0;
        spawnSync('redis-cli', ['-p', String(port), 'ping'])
          .stdout?.toString()
          .trim() !== 'PONG';
        i++
      ) {
        if (i > 100) throw new Error(`redis-server on ${port} did not start`)
        await sleep(50)
      }
    }
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `${n.host}:${n.port}`),
        '--cluster-replicas',
        '0',
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
        const info = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
          encoding: 'utf8',
        })
        if (info.stdout.includes('cluster_state:ok')) break
        if (i > 100) throw new Error(`cluster node ${port} did not become ok`)
        await sleep(50)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { nodes, spec: nodes.map((n) => `${n.host}:${n.port}`).join(','), stop }
}
