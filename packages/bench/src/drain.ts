/**
 * `firstcome bench drain`: how fast the stream workers persist a big event.
 *
 * With the REDIS_URL and DATABASE_URL of the environment (use a throw-away
 * database: the rows stay), it creates one coupon of --wins, grants every win
 * through the Redis gate in this process (the same Lua script the API runs), so
 * the whole event waits in the coupon's stream, then starts --workers
 * `firstcome worker` processes and times until every win is a row. Afterwards it
 * checks the rows (count, one per user, ranks 1..N) and removes the coupon's
 * Redis keys.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { readDbFacts } from './db-check.js'
import { type DelayedEnv, delayEnv, meanTimeInProxy, parseDelayMs } from './delay-proxy.js'
import { ConfigError, type Container, firstcomeEntry, loadConfig, RedisKeys } from './service.js'
import { connectRedis, createContainer, createRedis, findCoupon } from './service-backends.js'
import { ensureBenchDatabase } from './target.js'

export const DRAIN_USAGE = `Usage: firstcome bench drain [options]

Times the stream workers persisting one big event into DATABASE_URL (Redis mode:
REDIS_URL or REDIS_CLUSTER_NODES must be set; the rows stay, so point it at a
throw-away database). Grants --wins wins through the Redis gate first, then starts
--workers \`firstcome worker\` processes and reports rows per second.

  --wins N        wins in the event                     (default 1000000)
  --workers N     worker processes                      (default 1)
  --json FILE     write the figures as JSON
  --worker-node-option=OPT  a node option for the workers (repeatable), e.g.
                  --worker-node-option=--cpu-prof
  --delay-ms MS   the workers reach Redis and the database through a proxy
                  process that delays every byte MS ms each way (the grant
                  before them does not)
  -h, --help      this text

The workers take WORKER_BATCH_SIZE, WORKER_TX_ROWS, … from the environment.`

export interface DrainReport {
  dialect: string
  wins: number
  workers: number
  batchSize: number
  txRows: number
  /** the workers' one-way delay to Redis and the database, ms (null: none) */
  delayMs: number | null
  /** CPU of the delaying proxy process over the drain, ms */
  proxyCpuMs: number | null
  /** the mean time a chunk spent in the proxy over the drain, ms: the delay applied */
  proxyMeanDelayMs: number | null
  /** wins granted per second by the gate, filling the stream (this process) */
  grantPerSecond: number
  /** from starting the worker processes to the last row */
  drainSeconds: number
  rowsPerSecond: number
  /** from the first row seen to the last: the rate without the workers' start-up */
  steadyRowsPerSecond: number
  /** rows persisted in each whole second of the drain */
  perSecond: number[]
  rows: number
  duplicates: number
  ranksExact: boolean
  pass: boolean
  command: string
}

const GRANT_CONCURRENCY = 5000
const POLL_MS = 100
const DRAIN_TIMEOUT_MS = 30 * 60_000

function count(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new ConfigError(`--${name} must be ≥ 1`)
  return Number(raw)
}

async function grantAll(container: Container, couponId: number, wins: number): Promise<number> {
  const started = performance.now()
  const now = Date.now()
  for (let from = 0; from < wins; from += GRANT_CONCURRENCY) {
    const calls = []
    for (let u = from; u < Math.min(wins, from + GRANT_CONCURRENCY); u++) {
      calls.push(container.gate.tryIssue(couponId, `drain-${u}`, now))
    }
    for (const outcome of await Promise.all(calls)) {
      if (!outcome.won) throw new Error(`the gate refused a win: ${outcome.refusal}`)
    }
  }
  return wins / ((performance.now() - started) / 1000)
}

function startWorkers(n: number, env: NodeJS.ProcessEnv, nodeOptions: string[]): ChildProcess[] {
  const entry = firstcomeEntry
  return Array.from({ length: n }, () =>
    spawn(process.execPath, [...entry.execArgv, ...nodeOptions, entry.path, 'worker'], {
      // Each worker its own metrics port (any free one): two on the default collide.
      env: { ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn', METRICS_PORT: '0' },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  )
}

async function stopWorkers(workers: ChildProcess[]) {
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.exitCode !== null || w.signalCode !== null) return resolve()
          w.once('exit', () => resolve())
          w.kill('SIGTERM')
        }),
    ),
  )
}

export async function runDrain(
  args: string[],
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<DrainReport | 'help'> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      wins: { type: 'string' },
      workers: { type: 'string' },
      json: { type: 'string' },
      'worker-node-option': { type: 'string', multiple: true },
      'delay-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  const wins = count('wins', values.wins, 1_000_000)
  const workerCount = count('workers', values.workers, 1)
  const delayMs = values['delay-ms'] === undefined ? null : parseDelayMs(values['delay-ms'])
  const config = loadConfig(env)
  if (!config.redis) throw new ConfigError('bench drain needs REDIS_URL (or REDIS_CLUSTER_NODES)')

  await ensureBenchDatabase(config.databaseUrl, config.dialect, log)
  const container = await createContainer(config, pino({ level: 'warn' }))
  const redis = createRedis(config.redis, 'firstcome-bench')
  const workers: ChildProcess[] = []
  let delayed: DelayedEnv | null = null
  try {
    await connectRedis(redis)
    const coupon = await container.coupons.create({
      title: `drain bench ${wins}`,
      totalQuantity: wins,
      discountAmount: 0,
      minAvailableAmount: 0,
      issueStart: new Date(Date.now() - 60_000),
      issueEnd: new Date(Date.now() + 86_400_000),
    })
    log(`granting ${wins.toLocaleString()} wins of coupon #${coupon.id} through the gate`)
    const grantPerSecond = await grantAll(container, coupon.id, wins)

    if (delayMs !== null) delayed = await delayEnv(env, delayMs)
    const through = delayed ? ` through a ${delayMs} ms one-way delay` : ''
    log(`starting ${workerCount} worker process(es); draining into ${config.dialect}${through}`)
    const started = performance.now()
    const proxyCpuBefore = delayed?.proxy.cpuMs() ?? null
    const inProxyBefore = delayed?.proxy.timeInProxy() ?? null
    workers.push(
      ...startWorkers(workerCount, delayed?.env ?? env, values['worker-node-option'] ?? []),
    )
    const perSecond: number[] = []
    let persisted = 0
    let secondMark = started + 1000
    let atMark = 0
    let firstSeen: { rows: number; at: number } | null = null
    while (persisted < wins) {
      if (performance.now() - started > DRAIN_TIMEOUT_MS) throw new Error('the drain timed out')
      if (workers.some((w) => w.exitCode !== null)) throw new Error('a worker process exited')
      await sleep(POLL_MS)
      persisted = (await findCoupon(container.database.db, coupon.id))?.issuedQuantity ?? 0
      if (firstSeen === null && persisted > 0)
        firstSeen = { rows: persisted, at: performance.now() }
      for (; performance.now() >= secondMark; secondMark += 1000) {
        perSecond.push(persisted - atMark)
        atMark = persisted
      }
    }
    const ended = performance.now()
    const proxyCpuAfter = delayed?.proxy.cpuMs() ?? null
    const drainSeconds = (ended - started) / 1000
    const steadyRows = wins - (firstSeen?.rows ?? 0)
    const steadySeconds = (ended - (firstSeen?.at ?? started)) / 1000
    await stopWorkers(workers)
    // The proxy reports every quarter second; the last of the drain's chunks with it.
    if (delayed) await sleep(300)
    const inProxyAfter = delayed?.proxy.timeInProxy() ?? null
    const facts = await readDbFacts(config.databaseUrl, config.dialect, coupon.id, [])
    await redis.del(...Object.values(new RedisKeys(config.redis.keyPrefix).coupon(coupon.id)))
    const ranksExact = facts.distinctRanks === wins && facts.minRank === 1 && facts.maxRank === wins
    return {
      dialect: config.dialect,
      wins,
      workers: workerCount,
      batchSize: config.worker.batchSize,
      txRows: config.worker.txRows,
      delayMs,
      proxyCpuMs:
        proxyCpuBefore !== null && proxyCpuAfter !== null ? proxyCpuAfter - proxyCpuBefore : null,
      proxyMeanDelayMs:
        inProxyBefore && inProxyAfter ? meanTimeInProxy(inProxyBefore, inProxyAfter) : null,
      grantPerSecond,
      drainSeconds,
      rowsPerSecond: wins / drainSeconds,
      steadyRowsPerSecond: steadySeconds > 0 ? steadyRows / steadySeconds : wins / drainSeconds,
      perSecond,
      rows: facts.rows,
      duplicates: facts.duplicates.length,
      ranksExact,
      pass: facts.rows === wins && facts.duplicates.length === 0 && ranksExact,
      command: ['firstcome', 'bench', 'drain', ...args].join(' '),
    }
  } finally {
    await stopWorkers(workers)
    await delayed?.proxy.stop()
    redis.disconnect()
    await container.close()
  }
}

export function renderDrain(r: DrainReport): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US')
  const mark = (ok: boolean) => (ok ? '✓' : '✗')
  return `firstcome bench drain — ${n(r.wins)} wins into ${r.dialect}, ${r.workers} worker process(es)
  WORKER_BATCH_SIZE ${r.batchSize}, WORKER_TX_ROWS ${r.txRows}${r.delayMs === null ? '' : `, through a ${r.delayMs} ms one-way delay (proxy CPU ${r.proxyCpuMs ?? '?'} ms, mean time in it ${r.proxyMeanDelayMs?.toFixed(3) ?? '?'} ms)`}

Granted through the gate    ${n(r.grantPerSecond)} wins/s (one process, the API's issue.lua batches)
Drain time                  ${r.drainSeconds.toFixed(2)} s (from starting the workers)
Drain rate                  ${n(r.rowsPerSecond)} rows/s
  after start-up            ${n(r.steadyRowsPerSecond)} rows/s (first row to last)
Rows in each second         ${r.perSecond.length > 0 ? r.perSecond.map(n).join(', ') : '(done within the first second)'}

Invariants${r.pass ? ' (all pass)' : ' (FAILED)'}
  ${mark(r.rows === r.wins)} rows = wins: ${n(r.rows)} of ${n(r.wins)}
  ${mark(r.duplicates === 0)} no duplicate rows: ${r.duplicates} users with more than one
  ${mark(r.ranksExact)} ranks exactly 1..${n(r.wins)}

command: ${r.command}
`
}

export async function runDrainCommand(args: string[]): Promise<void> {
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`)
  const report = await runDrain(args, process.env, log)
  if (report === 'help') {
    process.stdout.write(`${DRAIN_USAGE}\n`)
    return
  }
  process.stdout.write(renderDrain(report))
  const json = args[args.indexOf('--json') + 1]
  if (args.includes('--json') && json) writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`)
  if (!report.pass) process.exitCode = 1
}
