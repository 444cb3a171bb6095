/**
 * `firstcome bench` past one machine, in short runs: the started server (or the
 * drain's workers) behind the delaying proxy (--delay-ms) on PostgreSQL, and the
 * started server on a Redis Cluster (--redis-cluster-nodes); each run ends with
 * its invariants passing. Bad combinations of the flags are refused.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseBenchArgs } from '../../packages/bench/src/cli.js'
import type { DrainReport } from '../../packages/bench/src/drain.js'
import type { GateReport } from '../../packages/bench/src/gate-batch.js'
import type { BenchReport } from '../../packages/bench/src/report.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { FROM_SOURCES } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'

const root = new URL('../..', import.meta.url).pathname

function bench(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [...FROM_SOURCES, 'src/main.ts', 'bench', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    child.on('error', reject)
    child.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

const SHORT = ['-c', '20', '-d', '2', '--quantity', '50', '--users', '1..200', '--no-progress']

describe('firstcome bench --delay-ms / --redis-cluster-nodes flags', () => {
  it('refuses them with --url, and a delay in front of a cluster', () => {
    assert.throws(() => parseBenchArgs(['--url', 'http://127.0.0.1:1', '--delay-ms', '1']))
    assert.throws(() =>
      parseBenchArgs(['--delay-ms', '1', '--redis-cluster-nodes', '127.0.0.1:7000']),
    )
    assert.throws(() => parseBenchArgs(['--delay-ms', '-1']))
    assert.throws(() => parseBenchArgs(['--redis-cluster-nodes', 'nohost']))
    const o = parseBenchArgs(['--delay-ms', '0.5'])
    assert.ok(o !== 'help' && o.delayMs === 0.5)
  })
})

describe('firstcome bench gate', { skip: skipUnlessRedisServer('for the gate bench') }, () => {
  it('drives issue.lua by batch size on a redis-server of its own, through a delay too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'firstcome-bench-gate-'))
    try {
      const json = join(dir, 'gate.json')
      const args = [
        'gate',
        '--seconds',
        '0.3',
        '--batches',
        '1,10',
        '--in-flight',
        '4',
        '--codes',
        '50000',
      ]
      const { code, stdout, stderr } = await bench([...args, '--delay-ms', '1', '--json', json], {})
      assert.equal(code, 0, `${stdout}\n${stderr}`)
      const report = JSON.parse(readFileSync(json, 'utf8')) as GateReport
      assert.equal(report.delayMs, 1)
      assert.ok((report.proxyMeanDelayMs ?? 0) >= 0.75, `mean ${report.proxyMeanDelayMs} ms`)
      assert.deepEqual(
        report.runs.map((r) => `${r.path} ${r.batch}`),
        ['win 1', 'win-codes 1', 'refusal 1', 'win 10', 'win-codes 10', 'refusal 10'],
      )
      for (const r of report.runs) {
        assert.ok(r.decisions > 0 && r.decisions % r.batch === 0, JSON.stringify(r))
        // Measured on the Redis that ran those decisions: it spent CPU on them.
        assert.ok(r.redisCpuMs > 0, JSON.stringify(r))
      }
      assert.match(stdout, /decisions per Redis CPU-second/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('firstcome bench through a delay, on a cluster', {
  skip: (await skipUnless('redis')) || (await skipUnless('postgres')),
  timeout: 180_000,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'firstcome-bench-scale-'))
  const prefix = uniquePrefix()
  let databaseUrl = ''

  before(async () => {
    databaseUrl = await createDatabaseUrl('postgres')
  })
  after(async () => {
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
    rmSync(dir, { recursive: true, force: true })
  })

  it('loads a server whose Redis and database are 1 ms away, invariants passing', async () => {
    const json = join(dir, 'delay.json')
    const { code, stdout, stderr } = await bench([...SHORT, '--delay-ms', '1', '--json', json], {
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      DATABASE_URL: databaseUrl,
    })
    assert.equal(code, 0, `${stdout}\n${stderr}`)
    const report = JSON.parse(readFileSync(json, 'utf8')) as BenchReport
    assert.ok(report.invariantsPass, JSON.stringify(report.invariants))
    assert.equal(report.runs.firstcome.outcomes['201'], 50)
    assert.match(stdout, /Redis and postgres behind a 1 ms one-way delay/)
    assert.match(stderr, /delay proxy CPU over the load: \d+ ms/)
    assert.match(stderr, /delay proxy: mean time in it [\d.]+ ms per chunk/)
  })

  it('drains through a 1 ms delay: every win a row once', async () => {
    const json = join(dir, 'drain.json')
    const { code, stdout, stderr } = await bench(
      ['drain', '--wins', '3000', '--workers', '1', '--delay-ms', '1', '--json', json],
      { REDIS_URL, REDIS_KEY_PREFIX: prefix, DATABASE_URL: databaseUrl },
    )
    assert.equal(code, 0, `${stdout}\n${stderr}`)
    const report = JSON.parse(readFileSync(json, 'utf8')) as DrainReport
    assert.ok(report.pass)
    assert.equal(report.rows, 3000)
    assert.equal(report.delayMs, 1)
    // Measured from /proc in ticks of 10 ms: a short drain may read 0, never null.
    assert.equal(typeof report.proxyCpuMs, 'number', 'the proxy CPU was measured')
    // No chunk leaves more than the window (a quarter of the delay) early.
    assert.ok((report.proxyMeanDelayMs ?? 0) >= 0.75, `mean ${report.proxyMeanDelayMs} ms`)
  })

  describe('on a Redis Cluster', { skip: skipUnlessRedisServer('to start a cluster') }, () => {
    let cluster: TestCluster | undefined
    after(() => cluster?.stop())

    it('loads a server on the cluster the flag names, invariants passing', async () => {
      cluster = await startCluster()
      const clusterDb = await createDatabaseUrl('postgres')
      try {
        const json = join(dir, 'cluster.json')
        const { code, stdout, stderr } = await bench(
          [...SHORT, '--redis-cluster-nodes', cluster.spec, '--json', json],
          { DATABASE_URL: clusterDb, REDIS_URL },
        )
        assert.equal(code, 0, `${stdout}\n${stderr}`)
        const report = JSON.parse(readFileSync(json, 'utf8')) as BenchReport
        assert.ok(report.invariantsPass, JSON.stringify(report.invariants))
        assert.match(stdout, /Redis Cluster gate and stream/)
      } finally {
        await dropDatabaseUrl(clusterDb)
      }
    })
  })
})
