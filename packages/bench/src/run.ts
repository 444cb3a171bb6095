/**
 * One bench from start to report: start (or find) the target, make the coupon,
 * load it, let the queue drain, check the invariants, then the same load against
 * the bare baseline server.
 */
import { cpus } from 'node:os'
import { runClients } from './clients.js'
import { readDbFacts, readRanks } from './db-check.js'
import { meanTimeInProxy } from './delay-proxy.js'
import { awaitDraw, checkDrawInvariants, createDrawCoupon, drawSoon } from './draw.js'
import { allPass, checkInvariants, type InvariantLine } from './invariants.js'
import { type ListenCounters, listenCounters, listenDelta, somaxconn } from './kernel.js'
import { type ServerProcess, startBaseline } from './local-server.js'
import { Progress } from './progress.js'
import type { Sample } from './recorder.js'
import { type BenchReport, buildRunReport, type RunReport, ratios } from './report.js'
import type { LoadPlan, ScenarioName, UserPlan } from './scenarios.js'
import { openTarget, type Target } from './target.js'
import {
  type CouponStats,
  couponStats,
  createCoupon,
  generateCodes,
  waitDrained,
} from './target-api.js'
import type { UserIdRange } from './user-ids.js'

export const CLIENT_NAME =
  'bare-socket HTTP/1.1 client (node:net, one pre-serialised string per request)'

export interface BenchOptions {
  scenario: ScenarioName
  /** null = start a local firstcome */
  url: string | null
  connections: number
  durationS: number
  /** seconds over which the looping connections are opened */
  rampS: number
  /** null = closed loop */
  rate: number | null
  users: UserIdRange
  quantity: number
  /** partner codes generated for the created coupon before the load (0: none) */
  codes: number
  couponId: number | null
  adminToken: string | null
  timeoutS: number
  processes: number
  baseline: boolean
  databaseUrl: string | null
  drainTimeoutS: number
  serverNodeOptions: string[]
  /** the CPUs the started servers may run on (`taskset -c` list); null: any */
  serverCpus: string | null
  /** one-way delay, ms, in front of the started server's Redis and database */
  delayMs: number | null
  /** REDIS_CLUSTER_NODES for the started server */
  redisClusterNodes: string | null
  /** seconds of load on a coupon of its own before the measured run (both servers) */
  warmupS: number
  progress: boolean
  command: string
  json: string | null
  html: string | null
}

/** Winners each run reports back for the no-loss check. */
const MAX_WINNERS = 100_000

function userPlan(o: BenchOptions): UserPlan {
  return o.scenario === 'win'
    ? { kind: 'sequential', start: o.users.min }
    : { kind: 'random', ...o.users }
}

function describeUsers(o: BenchOptions): string {
  const range = `${o.users.min.toLocaleString('en-US')}..${o.users.max.toLocaleString('en-US')}`
  return o.scenario === 'win'
    ? `a new one per request from ${o.users.min.toLocaleString('en-US')}`
    : `random in ${range}`
}

interface LoadRun {
  report: RunReport
  endedAt: number
  winners: number[]
}

async function load(
  o: BenchOptions,
  label: string,
  url: string,
  server: ServerProcess | null,
  description: string,
  coupon: { id: number; quantity: number | null },
): Promise<LoadRun> {
  const parsed = new URL(url)
  const plan: Omit<LoadPlan, 'part' | 'of'> = {
    target: { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 80) },
    scenario: o.scenario,
    couponId: coupon.id,
    users: userPlan(o),
    connections: o.connections,
    durationMs: o.durationS * 1000,
    rampMs: o.rampS * 1000,
    rate: o.rate,
    timeoutMs: o.timeoutS * 1000,
    maxWinners: Math.ceil(MAX_WINNERS / Math.max(1, o.processes)),
  }
  const samples: Sample[] = []
  const progress = new Progress(process.stderr, label, o.durationS, o.progress)
  const netBefore: ListenCounters | null = listenCounters()
  const cpuBefore = server?.cpuMs() ?? null
  let peakRss = server?.rss() ?? null
  const rssTimer = setInterval(() => {
    const rss = server?.rss() ?? null
    if (rss !== null) {
      peakRss = {
        total: Math.max(peakRss?.total ?? 0, rss.total),
        largest: Math.max(peakRss?.largest ?? 0, rss.largest),
      }
    }
  }, 500)
  const clients = await runClients(
    plan,
    o.processes,
    (s) => {
      samples.push(s)
      progress.sample(s)
    },
    (startEpochMs) => progress.start(startEpochMs),
  ).finally(() => {
    progress.stop()
    clearInterval(rssTimer)
  })
  const endedAt = Date.now()
  const cpuAfter = server?.cpuMs() ?? null
  const report = buildRunReport({
    target: url,
    server: description,
    couponId: coupon.id,
    quantity: coupon.quantity,
    scenario: o.scenario,
    clients,
    samples,
    serverCpuMs: cpuBefore !== null && cpuAfter !== null ? cpuAfter - cpuBefore : null,
    serverPeakRss: peakRss,
    listenQueue: listenDelta(netBefore, listenCounters()),
  })
  return { report, endedAt, winners: clients.results.flatMap((r) => r.winners) }
}

/**
 * The same connections and load shape on the win path (new users on an unlimited
 * coupon of its own, ids far from the measured range) for --warmup seconds, so the
 * measured run does not include the JIT compiling the hot path, connection set-up
 * and first-use caches. The figures are shown, not kept; firstcome's warm-up wins
 * are persisted before the measured run starts.
 */
async function warmUp(
  o: BenchOptions,
  log: (line: string) => void,
  url: string,
  server: ServerProcess | null,
  coupon: { id: number; quantity: null },
) {
  log(`warming up ${url} for ${o.warmupS} s`)
  const warm: BenchOptions = {
    ...o,
    scenario: 'win',
    durationS: o.warmupS,
    users: { min: WARMUP_USERS_FROM, max: WARMUP_USERS_FROM + 1e9 },
  }
  const run = await load(warm, 'warm-up', url, server, 'warm-up', coupon)
  const r = run.report
  log(
    `warm-up: ${r.requests.answered.toLocaleString('en-US')} answers, ${Math.round(r.throughput).toLocaleString('en-US')} req/s, p99 ${r.latencyMs.p99} ms`,
  )
}

/** Warm-up users: a range no scenario's default range reaches. */
const WARMUP_USERS_FROM = 9_000_000_000_000

async function prepareCoupon(o: BenchOptions, target: Target) {
  if (o.scenario === 'draw') {
    if (!target.adminToken) throw new Error('the draw scenario needs --admin-token')
    const loadMs = (o.durationS + o.rampS + o.timeoutS) * 1000
    const { id } = await createDrawCoupon(target.url, target.adminToken, o.quantity, loadMs)
    return { id, quantity: o.quantity, wonBefore: 0 }
  }
  if (o.couponId !== null) {
    const before = await couponStats(target.url, o.couponId)
    return { id: o.couponId, quantity: before.totalQuantity, wonBefore: before.won }
  }
  if (!target.adminToken) {
    throw new Error(
      'creating the coupon needs --admin-token (or --coupon ID to use an existing one)',
    )
  }
  const quantity = o.scenario === 'win' ? null : o.quantity
  const openFor = (o.durationS + o.timeoutS) * 1000 + 3_600_000
  const id = await createCoupon(target.url, target.adminToken, quantity, openFor)
  if (o.codes === 0) return { id, quantity, wonBefore: 0 }
  // The codes are the limit from now on (fewer than the quantity, or unlimited).
  await generateCodes(target.url, target.adminToken, id, o.codes)
  return { id, quantity: quantity === null ? o.codes : Math.min(quantity, o.codes), wonBefore: 0 }
}

/**
 * The draw scenario after its load: the draw is due in a second, then its
 * record, its entrant lists, the drained queue and the rows are checked.
 */
async function verifyDraw(
  o: BenchOptions,
  target: Target,
  coupon: { id: number; quantity: number | null },
  run: LoadRun,
  log: (line: string) => void,
): Promise<InvariantLine[]> {
  const token = target.adminToken as string
  const drawAt = await drawSoon(target.url, token, coupon.id)
  log(`entries closed by the load's end; the draw is due at ${new Date(drawAt).toISOString()}`)
  const timeoutMs = o.drainTimeoutS * 1000
  const draw = await awaitDraw(target.url, token, coupon.id, drawAt, timeoutMs)
  if (draw) {
    const { record } = draw
    log(
      `drawn: ${record.winners.length.toLocaleString('en-US')} winners of ${record.entrants.toLocaleString('en-US')} entrants, recorded ${(draw.recordedAfterMs / 1000).toFixed(2)} s after drawAt`,
    )
  }
  const drain = await waitDrained(target.url, coupon.id, timeoutMs, Date.now())
  const rows = target.db ? await readRanks(target.db.url, target.db.dialect, coupon.id) : null
  const r = run.report
  return checkDrawInvariants({
    quantity: coupon.quantity ?? 0,
    draw,
    waitedMs: Date.now() - drawAt,
    distinct202: r.distinctUsers.won,
    uncertain: r.requests.timeouts + r.requests.connectionErrors + r.requests.unexpectedStatus,
    reported202: run.winners,
    won: drain.stats.won,
    persisted: drain.stats.persisted,
    drained: drain.drained,
    rows,
  })
}

async function verify(
  o: BenchOptions,
  target: Target,
  coupon: { id: number; quantity: number | null; wonBefore: number },
  run: LoadRun,
): Promise<InvariantLine[]> {
  const drain = await waitDrained(target.url, coupon.id, o.drainTimeoutS * 1000, run.endedAt)
  const after: CouponStats = drain.stats
  const db = target.db
    ? await readDbFacts(target.db.url, target.db.dialect, coupon.id, run.winners)
    : null
  const r = run.report
  return checkInvariants({
    quantity: coupon.quantity,
    wonBefore: coupon.wonBefore,
    after,
    drained: drain.drained,
    drainMs: drain.ms,
    drainTimeoutMs: o.drainTimeoutS * 1000,
    distinctSent: r.distinctUsers.sent,
    distinctAnswered: r.distinctUsers.answered,
    winsAnswered: r.winsAnswered,
    unanswered: r.requests.timeouts + r.requests.connectionErrors,
    unexpected: r.requests.unexpectedStatus,
    db,
  })
}

/**
 * What must not outlive the bench: started servers, the temporary database.
 * `stopNow` runs these synchronously when the bench is interrupted.
 */
const running = new Set<() => void>()

export function stopNow(): void {
  for (const stop of running) stop()
  running.clear()
}

function track(stop: () => void): () => void {
  running.add(stop)
  return () => running.delete(stop)
}

/** The delaying proxy's own CPU over the load, beside the server's: what it costs. */
function logProxyCpu(
  log: (line: string) => void,
  target: Target,
  proxyBefore: number | null,
  serverBefore: number | null,
  inProxyBefore: { chunks: number; sumMs: number } | null,
) {
  const proxyAfter = target.delayProxy?.cpuMs() ?? null
  const serverAfter = target.server?.cpuMs() ?? null
  if (proxyBefore === null || proxyAfter === null) return
  const proxy = proxyAfter - proxyBefore
  const server = serverBefore !== null && serverAfter !== null ? serverAfter - serverBefore : null
  const share = server
    ? ` (${((100 * proxy) / server).toFixed(1)} % of the server's ${server} ms)`
    : ''
  log(`delay proxy CPU over the load: ${proxy} ms${share}`)
  const inProxyAfter = target.delayProxy?.timeInProxy() ?? null
  const mean = inProxyBefore && inProxyAfter ? meanTimeInProxy(inProxyBefore, inProxyAfter) : null
  if (mean !== null) log(`delay proxy: mean time in it ${mean.toFixed(3)} ms per chunk`)
}

export async function runBenchmark(
  o: BenchOptions,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<BenchReport> {
  const startedAt = new Date().toISOString()
  const target = await openTarget(o, env, log)
  const untrack = track(() => {
    target.server?.kill()
    target.cleanup()
  })
  let firstcome: RunReport
  let invariants: InvariantLine[]
  try {
    if (o.warmupS > 0) {
      if (!target.adminToken) throw new Error('--warmup needs --admin-token on a --url server')
      const openFor = (o.warmupS + o.timeoutS) * 1000 + 3_600_000
      const id = await createCoupon(target.url, target.adminToken, null, openFor)
      await warmUp(o, log, target.url, target.server, { id, quantity: null })
      // The warm-up's wins are persisted before the measured load, not during it.
      const settled = await waitDrained(target.url, id, o.drainTimeoutS * 1000, Date.now())
      log(`warm-up drained in ${settled.ms} ms${settled.drained ? '' : ' (not fully: gave up)'}`)
    }
    const coupon = await prepareCoupon(o, target)
    log(`loading ${target.url} (coupon #${coupon.id})`)
    const proxyCpu = target.delayProxy?.cpuMs() ?? null
    const serverCpu = target.server?.cpuMs() ?? null
    const inProxy = target.delayProxy?.timeInProxy() ?? null
    const run = await load(o, 'firstcome', target.url, target.server, target.description, coupon)
    firstcome = run.report
    logProxyCpu(log, target, proxyCpu, serverCpu, inProxy)
    log('checking invariants')
    invariants =
      o.scenario === 'draw'
        ? await verifyDraw(o, target, coupon, run, log)
        : await verify(o, target, coupon, run)
  } finally {
    untrack()
    await target.server?.stop()
    target.cleanup()
  }
  const serverLog = target.server?.log() ?? null

  let baseline: RunReport | null = null
  if (o.baseline) {
    log('starting the baseline server')
    const server = await startBaseline(o.scenario, [], o.serverCpus)
    const untrackBaseline = track(() => server.kill())
    try {
      if (o.warmupS > 0) await warmUp(o, log, server.url, server, { id: 1, quantity: null })
      log(`loading ${server.url} (baseline)`)
      const description = 'bare node:http baseline started by the bench (one process, fixed body)'
      const run = await load(o, 'baseline', server.url, server, description, {
        id: 1,
        quantity: null,
      })
      baseline = run.report
    } finally {
      untrackBaseline()
      await server.stop()
    }
  }

  return {
    version: 1,
    command: o.command,
    startedAt,
    machine: {
      cpus: cpus().length,
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      somaxconn: somaxconn(),
    },
    load: {
      scenario: o.scenario,
      shape: o.rate === null ? 'closed' : 'open',
      connections: o.connections,
      durationSeconds: o.durationS,
      rampSeconds: o.rampS,
      rate: o.rate,
      users: describeUsers(o),
      timeoutSeconds: o.timeoutS,
      warmupSeconds: o.warmupS,
      client: CLIENT_NAME,
      clientProcesses: o.processes,
    },
    runs: { firstcome, baseline },
    ratios: ratios(firstcome, baseline),
    invariants,
    invariantsPass: allPass(invariants),
    serverLog,
  }
}
