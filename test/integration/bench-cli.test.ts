/**
 * `firstcome bench` end to end: the CLI starts its own embedded server on a fresh
 * SQLite database, loads it briefly (closed loop, then open loop with the
 * baseline, then the draw scenario: entries, the draw, its invariants),
 * checks the invariants and writes its reports. Pointed at a
 * PostgreSQL database that does not exist, it creates it.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import type { BenchReport } from '../../packages/bench/src/report.js'
import { dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { FROM_SOURCES } from '../helpers/processes.js'
import { SERVICES } from '../helpers/services.js'

const root = new URL('../..', import.meta.url).pathname
const dir = mkdtempSync(join(tmpdir(), 'firstcome-bench-test-'))
after(() => rmSync(dir, { recursive: true, force: true }))

/** The environment minus anything that would pick another mode for the started server. */
function embeddedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of [
    'DATABASE_URL',
    'REDIS_URL',
    'REDIS_CLUSTER_NODES',
    'JWT_SECRET',
    'JWT_PUBLIC_KEY',
    'RATE_LIMIT_PER_IP',
    'RATE_LIMIT_PER_USER',
    'QUEUE_TIMEOUT_MS',
    'PORT',
    'HOST',
  ]) {
    delete env[name]
  }
  return env
}

function bench(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...FROM_SOURCES, 'src/main.ts', 'bench', ...args], {
      cwd: root,
      env: { ...embeddedEnv(), ...env },
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

function readReport(file: string): BenchReport {
  return JSON.parse(readFileSync(file, 'utf8')) as BenchReport
}

function assertCleanRun(report: BenchReport) {
  const run = report.runs.firstcome
  assert.ok(run.requests.total > 0, 'requests were made')
  assert.equal(run.requests.failed, 0, JSON.stringify(run.requests))
  assert.equal(run.requests.timeouts, 0)
  assert.equal(run.requests.connectionErrors, 0)
  assert.equal(run.outcomes['201'], 50, 'exactly the quantity won')
  assert.equal(run.winsAnswered, 50)
  assert.ok(report.invariantsPass, JSON.stringify(report.invariants, null, 2))
  assert.ok(
    report.invariants?.every((l) => l.ok === true),
    'every invariant was checked',
  )
}

describe('firstcome bench', { timeout: 60_000 }, () => {
  it('runs the seed scenario with looping connections and checks the invariants', async () => {
    const json = join(dir, 'closed.json')
    const html = join(dir, 'closed.html')
    const { code, stdout, stderr } = await bench([
      '-c',
      '20',
      '-d',
      '2',
      '--quantity',
      '50',
      '--json',
      json,
      '--html',
      html,
    ])
    assert.equal(code, 0, stderr)
    // How long it will take is said first.
    assert.match(stderr.split('\n')[0] ?? '', /^bench: seed: 20 looping connections for 2 s, /)
    assert.match(stdout, /Total requests/)
    assert.match(stdout, /Invariants \(all pass\)/)
    assert.match(stdout, /Server log \(firstcome, start to stop\): 0 warnings, 0 errors/)
    const report = readReport(json)
    assertCleanRun(report)
    assert.deepEqual(report.serverLog, { warnings: 0, errors: 0, messages: [] })
    assert.equal(report.version, 1)
    assert.equal(report.load.shape, 'closed')
    assert.equal(report.load.connections, 20)
    assert.equal(report.runs.baseline, null)
    const run = report.runs.firstcome
    for (const key of ['p50', 'p70', 'p90', 'p95', 'p99', 'max'] as const) {
      assert.ok(run.latencyMs[key] > 0, `${key} measured`)
    }
    assert.ok(run.throughput > 0)
    assert.ok(run.wallSeconds >= 2 && run.wallSeconds < 10, `wall ${run.wallSeconds}`)
    assert.ok(run.timeline.length >= 2, 'a bucket per second')
    assert.equal(
      run.timeline.reduce((n, b) => n + b.responses, 0),
      run.requests.answered,
      'the timeline adds up to the total',
    )
    assert.ok(run.distinctUsers.answered > 50)
    // Each looping connection's first request is counted apart (connect + accept wait).
    assert.equal(run.firstRequestOnConnectionMs.count, 20)
    assert.ok(run.serverCpu === null || run.serverCpu.seconds > 0)
    const page = readFileSync(html, 'utf8')
    assert.match(page, /^<!doctype html>/)
    assert.match(page, /<svg /)
    assert.doesNotMatch(page, /<script|https?:\/\/(?!127\.0\.0\.1)/, 'self-contained')
  })

  it('runs an open loop at a fixed rate, with the baseline', async () => {
    const json = join(dir, 'open.json')
    const { code, stderr } = await bench([
      '--rate',
      '200',
      '-d',
      '2',
      '-c',
      '50',
      '--quantity',
      '50',
      '--baseline',
      '--json',
      json,
    ])
    assert.equal(code, 0, stderr)
    const report = readReport(json)
    assertCleanRun(report)
    assert.equal(report.load.shape, 'open')
    // 200 req/s for 2 s: exactly 400 requests fall due, whatever the server does.
    assert.equal(report.runs.firstcome.requests.total, 400)
    // Its connections were opened (and answered once) before the load: none is new in it.
    assert.equal(report.runs.firstcome.firstRequestOnConnectionMs.count, 0)
    const baseline = report.runs.baseline
    assert.ok(baseline)
    assert.equal(baseline.requests.total, 400)
    assert.equal(baseline.requests.failed, 0)
    assert.ok(report.ratios && report.ratios.throughput > 0 && report.ratios.p99 > 0)
    assert.ok(report.ratios.serverCpuPerRequest === null || report.ratios.serverCpuPerRequest > 0)
  })

  it('runs the draw scenario: entries at full speed, the draw, its invariants', async () => {
    const json = join(dir, 'draw.json')
    const { code, stdout, stderr } = await bench([
      '--scenario',
      'draw',
      '-c',
      '20',
      '-d',
      '2',
      '--quantity',
      '50',
      '--users',
      '1..400',
      '--baseline',
      '--json',
      json,
    ])
    assert.equal(code, 0, stderr)
    assert.match(stdout, /Invariants \(all pass\)/)
    assert.match(stderr, /bench: drawn: 50 winners of \d+ entrants, recorded [\d.]+ s after drawAt/)
    const report = readReport(json)
    const run = report.runs.firstcome
    assert.equal(run.requests.failed, 0, JSON.stringify(run.requests))
    assert.deepEqual(Object.keys(run.outcomes), ['202'])
    assert.ok(run.distinctUsers.won > 50 && run.distinctUsers.won <= 400)
    assert.equal(run.distinctUsers.won, run.distinctUsers.answered)
    assert.deepEqual(
      report.invariants?.map((l) => [l.name, l.ok]),
      [
        ['the draw ran', true],
        ['the draw verifies (verify-draw)', true],
        ['entrants = distinct users answered 202', true],
        ['every user answered 202 is an entrant', true],
        ['winners = min(quantity, entrants)', true],
        ['winners ⊆ entrants', true],
        ['queue drained, gate = database', true],
        ['ranks 1..n persisted, each the record’s winner', true],
      ],
    )
    // The bare baseline answers the same 202 an entry gets.
    assert.deepEqual(Object.keys(report.runs.baseline?.outcomes ?? {}), ['202'])
    assert.ok(report.ratios && report.ratios.throughput > 0)
  })

  it('reports what the started server logged at warn or above', async () => {
    const json = join(dir, 'log.json')
    // Loaded into the started server: one Node warning (stderr), one pino-shaped warning (stdout).
    const preload =
      'data:text/javascript,process.emitWarning("disk nearly full");' +
      'console.log(JSON.stringify({level:40,msg:"worker backing off",err:{message:"ECONNRESET"}}))'
    const { code, stdout, stderr } = await bench([
      '-c',
      '5',
      '-d',
      '1',
      '--quantity',
      '50',
      `--server-node-option=--import=${preload}`,
      '--json',
      json,
    ])
    assert.equal(code, 0, stderr)
    assert.match(stdout, /Server log \(firstcome, start to stop\): 2 warnings, 0 errors/)
    assert.match(stdout, /warn ×1 {2}worker backing off: ECONNRESET/)
    const report = readReport(json)
    assert.equal(report.serverLog?.warnings, 2)
    assert.deepEqual(report.serverLog?.messages.map((m) => m.message).sort(), [
      'Warning: disk nearly full',
      'worker backing off: ECONNRESET',
    ])
  })
})

describe('firstcome bench on a PostgreSQL database that does not exist yet', {
  timeout: 60_000,
  skip: await skipUnlessDialect('postgres'),
}, () => {
  const name = `fc_test_${randomBytes(5).toString('hex')}`
  const url = `postgres://postgres@${SERVICES.postgres.host}:${SERVICES.postgres.port}/${name}`
  after(() => dropDatabaseUrl(url))

  it('creates it, says so, and runs', async () => {
    const { code, stdout, stderr } = await bench(['-c', '5', '-d', '1', '--quantity', '50'], {
      DATABASE_URL: url,
    })
    assert.equal(code, 0, stderr)
    assert.match(stderr, new RegExp(`bench: created the database ${name}\\n`))
    assert.match(stdout, /Invariants \(all pass\)/)
  })
})
