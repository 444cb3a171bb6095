/**
 * `firstcome bench gate`: what one Redis core decides per second, by batch size.
 *
 * Starts a redis-server of its own (no persistence) on a free loopback port, or
 * uses --redis-url, and calls the gate's own `issue.lua` directly with batches
 * of --batches users, keeping --in-flight calls outstanding, for --seconds each:
 * on an unlimited coupon (every request a win: HSET + XADD), the same with
 * partner codes (`win-codes`: the codes list is the limit, and each win is
 * answered with HGET of its rank), and on a sold-out one (every request a
 * refusal after HEXISTS). Redis's own CPU
 * (INFO `used_cpu_user` + `used_cpu_sys`) over each run gives decisions per Redis
 * CPU-second, which does not depend on how loaded the machine is the way a
 * wall-clock rate does. Optionally through the delaying proxy (--delay-ms).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import {
  type DelayProxyProcess,
  meanTimeInProxy,
  parseDelayMs,
  spawnDelayProxy,
} from './delay-proxy.js'
import { ConfigError, RedisKeys } from './service.js'
import { issueKeys, issueScript, stampScript } from './service-backends.js'

export const GATE_USAGE = `Usage: firstcome bench gate [options]

Drives the gate's issue.lua against Redis with fixed batch sizes and reports
decisions per second and per Redis CPU-second (INFO used_cpu_user + used_cpu_sys),
for wins (unlimited coupon, new users), wins with partner codes (the same coupon
with --codes codes: each win answered with its code) and refusals (sold-out
coupon), in that order for each batch size.

  --batches LIST     batch sizes                                 (default 1,10,100,256)
  --seconds S        per batch size and path                     (default 3)
  --in-flight N      calls outstanding at once                   (default 16)
  --codes N          partner codes of the win-codes coupon (more than its wins)
                                                                 (default 2000000)
  --redis-url URL    an existing Redis (keys under a prefix of the bench's own,
                     deleted after); default: a redis-server started here
  --delay-ms MS      reach Redis through the delaying proxy, MS each way
  --json FILE        write the figures as JSON
  -h, --help         this text`

type GatePath = 'win' | 'win-codes' | 'refusal'
const PATHS: readonly GatePath[] = ['win', 'win-codes', 'refusal']

export interface GateRun {
  path: GatePath
  batch: number
  decisions: number
  seconds: number
  decisionsPerSecond: number
  /** Redis CPU over the run, ms (user + sys) */
  redisCpuMs: number
  /** decisions per Redis CPU-second */
  decisionsPerRedisCpuSecond: number
  /** the Redis CPU the run used, per wall second: 1.0 = one core busy */
  redisCoreShare: number
}

export interface GateReport {
  redis: string
  delayMs: number | null
  /** the mean time a chunk spent in the proxy over all the runs, ms: the delay applied */
  proxyMeanDelayMs: number | null
  inFlight: number
  runs: GateRun[]
  command: string
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

async function startOwnRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort()
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  )
  const url = `redis://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return { url, child }
    } catch {
      probe.disconnect()
      if (i > 100 || child.exitCode !== null) throw new Error('redis-server did not start')
      await sleep(50)
    }
  }
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1])
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000
}

async function runOne(
  redis: Redis,
  keys: RedisKeys,
  couponId: number,
  batch: number,
  seconds: number,
  inFlight: number,
): Promise<{ decisions: number; seconds: number }> {
  const k = keys.coupon(couponId)
  const keyList = issueKeys(k)
  let next = 0
  let decisions = 0
  const started = performance.now()
  const until = started + seconds * 1000
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        const args: (string | number)[] = []
        // As the gate sends them: user, '' (judged by Redis's clock), the request's id.
        for (let i = 0; i < batch; i++) {
          const user = `u${next++}`
          args.push(user, '', `r${user}`)
        }
        // Redis's clock, then one answer per request
        const codes = await issueScript.run(redis, keyList, args)
        if (!Array.isArray(codes) || codes.length !== batch + 1) {
          throw new Error(`issue.lua answered ${String(codes)}`)
        }
        decisions += batch
      }
    }),
  )
  const wall = (performance.now() - started) / 1000
  return { decisions, seconds: wall }
}

export async function runGateBench(args: string[]): Promise<GateReport | 'help'> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      batches: { type: 'string', default: '1,10,100,256' },
      seconds: { type: 'string', default: '3' },
      'in-flight': { type: 'string', default: '16' },
      codes: { type: 'string', default: '2000000' },
      'redis-url': { type: 'string' },
      'delay-ms': { type: 'string' },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  const batches = (values.batches ?? '').split(',').map(Number)
  if (batches.some((b) => !Number.isInteger(b) || b < 1 || b > 10_000)) {
    throw new ConfigError(`--batches must be integers from 1 to 10000, got "${values.batches}"`)
  }
  const seconds = Number(values.seconds)
  const inFlight = Number(values['in-flight'])
  const codes = Number(values.codes)
  if (!Number.isInteger(codes) || codes < 1) throw new ConfigError('--codes must be an integer ≥ 1')
  if (!(seconds > 0) || !Number.isInteger(inFlight) || inFlight < 1) {
    throw new ConfigError('--seconds must be > 0 and --in-flight an integer ≥ 1')
  }
  const delayMs = values['delay-ms'] === undefined ? null : parseDelayMs(values['delay-ms'])
  const own = values['redis-url'] ? null : await startOwnRedis()
  const url = values['redis-url'] ?? own?.url ?? ''
  let proxy: DelayProxyProcess | null = null
  const direct = new Redis(url, { maxRetriesPerRequest: 1 })
  let client = direct
  try {
    if (delayMs !== null) {
      const u = new URL(url)
      proxy = await spawnDelayProxy(delayMs, [{ host: u.hostname, port: Number(u.port || 6379) }])
      client = new Redis(`redis://127.0.0.1:${proxy.ports[0]}`, { maxRetriesPerRequest: 1 })
    }
    const keys = new RedisKeys(`fcbench:${process.pid}:`)
    const runs: GateRun[] = []
    const k0 = keys.coupon(0)
    await issueScript.run(direct, issueKeys(k0), []) // loads the script
    let couponId = 1
    const inProxy = proxy?.timeInProxy() ?? null
    for (const batch of batches) {
      for (const path of PATHS) {
        const id = couponId++
        await prepare(direct, keys.coupon(id), path, codes)
        runs.push(await measure(client, direct, keys, id, path, batch, seconds, inFlight))
      }
    }
    // The proxy reports every quarter second.
    if (proxy) await sleep(300)
    const inProxyAfter = proxy?.timeInProxy() ?? null
    return {
      redis: own ? 'a redis-server started by the bench (no persistence)' : url,
      delayMs,
      proxyMeanDelayMs: inProxy && inProxyAfter ? meanTimeInProxy(inProxy, inProxyAfter) : null,
      inFlight,
      runs,
      command: ['firstcome', 'bench', 'gate', ...args].join(' '),
    }
  } finally {
    if (client !== direct) client.disconnect()
    direct.disconnect()
    await proxy?.stop()
    own?.child.kill('SIGKILL')
  }
}

/** The coupon's rules, and for `win-codes` its codes (before the run: not measured). */
async function prepare(
  redis: Redis,
  k: ReturnType<RedisKeys['coupon']>,
  path: GatePath,
  codes: number,
) {
  const total = path === 'refusal' ? 0 : -1
  await redis.hset(k.meta, 'start', 0, 'end', 8_000_000_000_000, 'total', total)
  await stampScript.run(redis, [k.meta, k.live], ['set']) // as a created coupon is
  if (path !== 'win-codes') return
  for (let from = 0; from < codes; from += 10_000) {
    const fields: (string | number)[] = []
    for (let i = from; i < Math.min(codes, from + 10_000); i++)
      fields.push(i + 1, `CODE${String(i + 1).padStart(12, '0')}`)
    await redis.hset(k.codes, ...fields)
  }
}

/** runOne through `client`, with Redis's CPU read on `direct`. */
async function measure(
  client: Redis,
  direct: Redis,
  keys: RedisKeys,
  couponId: number,
  path: GatePath,
  batch: number,
  seconds: number,
  inFlight: number,
): Promise<GateRun> {
  const before = await redisCpuMs(direct)
  const run = await runOne(client, keys, couponId, batch, seconds, inFlight)
  const cpu = (await redisCpuMs(direct)) - before
  await direct.del(...Object.values(keys.coupon(couponId)))
  return {
    path,
    batch,
    ...run,
    decisionsPerSecond: run.decisions / run.seconds,
    redisCpuMs: cpu,
    decisionsPerRedisCpuSecond: cpu > 0 ? run.decisions / (cpu / 1000) : 0,
    redisCoreShare: cpu / 1000 / run.seconds,
  }
}

export function renderGate(r: GateReport): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US')
  const lines = [
    `firstcome bench gate — issue.lua on ${r.redis}, ${r.inFlight} calls in flight${r.delayMs === null ? '' : `, through a ${r.delayMs} ms one-way delay (mean time in the proxy ${r.proxyMeanDelayMs?.toFixed(3) ?? '?'} ms)`}`,
    '',
    'path       batch  decisions/s  Redis CPU  decisions per Redis CPU-second',
  ]
  for (const run of r.runs) {
    lines.push(
      `${run.path.padEnd(10)} ${String(run.batch).padStart(5)}  ${n(run.decisionsPerSecond).padStart(11)}  ${`${(run.redisCoreShare * 100).toFixed(0)} %`.padStart(9)}  ${n(run.decisionsPerRedisCpuSecond).padStart(12)}`,
    )
  }
  lines.push('', `command: ${r.command}`, '')
  return lines.join('\n')
}

export async function runGateCommand(args: string[]): Promise<void> {
  const report = await runGateBench(args)
  if (report === 'help') {
    process.stdout.write(`${GATE_USAGE}\n`)
    return
  }
  process.stdout.write(renderGate(report))
  const json = args[args.indexOf('--json') + 1]
  if (args.includes('--json') && json) writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`)
}
