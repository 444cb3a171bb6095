/** `firstcome bench`: flags → BenchOptions → run → table, JSON and HTML reports. */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parseDelayMs } from './delay-proxy.js'
import { runDrainCommand } from './drain.js'
import { runGateCommand } from './gate-batch.js'
import { renderHtml } from './report-html.js'
import { renderText } from './report-text.js'
import { type BenchOptions, CLIENT_NAME, runBenchmark, stopNow } from './run.js'
import { SCENARIOS, type ScenarioName } from './scenarios.js'
import { ConfigError } from './service.js'
import type { UserIdRange } from './user-ids.js'

export const BENCH_USAGE = `Usage: firstcome bench [options]

Loads a firstcome server the way the original Spring system's Locust test did
(5,000 looping users for 5 minutes, random user ids in 1..10,000,000, one coupon
of 500), prints the original README's table (total, failed, failure %, req/s,
p50/p70/p90/p95/p99/max, outcomes), then checks the invariants once the queue
has drained. Without --url it starts \`firstcome serve\` itself with the current
environment (REDIS_URL=… DATABASE_URL=… firstcome bench loads that mode; with no
DATABASE_URL, a fresh temporary SQLite database) and stops it afterwards.

  firstcome bench drain [options]   the stream workers' drain rate; see
                                    \`firstcome bench drain --help\`
  firstcome bench gate [options]    issue.lua's decisions per Redis CPU-second
                                    by batch size; see \`firstcome bench gate --help\`

Scenarios:
  seed     random users in --users, one coupon of --quantity (the original run)
  win      an unlimited coupon and a new user on every request (the win path)
  compat   the original's POST /v2/issue-async {"userId": <long>, "couponId": <long>}
  draw     random users in --users entering the opening draw of a coupon of
           --quantity (202 each) for the whole load; when it ends the draw is
           made due, and once drawn the draw's invariants are checked: entrants
           = distinct users answered 202, winners = min(quantity, entrants),
           the draw verifies (verify-draw), winners ranked 1..n in the rows

Load:
  --scenario NAME          seed | win | compat | draw                (default seed)
  -c, --connections N      looping connections (closed loop), or the most
                           connections the open loop may open        (default 5000)
  -d, --duration SECONDS   how long requests are sent                 (default 300)
  --ramp SECONDS           open the looping connections evenly over this long, like
                           Locust's spawn rate (default 0: all at once, a flash crowd;
                           a busy Node server accepts about one new connection per
                           event-loop turn, so the last of thousands wait seconds)
  --rate R                 open loop: offer R requests/s whatever the server does;
                           latency counts from each request's scheduled send time,
                           so a stall is charged for the queue it causes. As in
                           wrk2, the -c connections are opened first (each answers
                           one GET /healthz; then 1 s of quiet), and requests go
                           to the connection idle longest  (default: closed loop)
  --users MIN..MAX         user id range; random for seed/compat/draw, sequential from
                           MIN for win                      (default 1..10000000)
  --timeout SECONDS        a request with no answer by then is a timeout  (default 30)
  --warmup SECONDS         first load each server this long on the win path (a
                           coupon of its own, users outside the measured range),
                           so JIT compilation and first-use set-up are not
                           measured; shown, not kept                  (default 0)
  --processes N            client processes sharing the load; 0 = in this process
                                                                       (default 1)

Target:
  --url URL                load a running server instead of starting one
  --quantity N             the coupon's quantity (seed, compat, draw) (default 500)
  --codes N                give the created coupon N generated partner codes
                           before the load (win: they are its limit, so N must
                           exceed the wins; each 201 then carries its code)
  --coupon ID              use an existing coupon instead of creating one
  --admin-token TOKEN      to create the coupon on a --url server (a started
                           server gets this token, or ADMIN_TOKEN, or a random one)
  --database-url URL       the target's database, for the duplicate-row checks
                           (known without it when the bench starts the server)
  --drain-timeout SECONDS  how long to wait for queued = 0 after the load, and in
                           the draw scenario for the draw's record  (default 60)
  --server-node-option=OPT a node option for the started server (repeatable), e.g.
                           --server-node-option=--cpu-prof
  --server-cpus LIST       run the started servers (firstcome and the baseline) on
                           these CPUs only (taskset -c LIST, Linux); run the bench
                           itself with taskset -c on the others, so the client
                           does not take the server's CPU  (default: any CPU)
  --redis-cluster-nodes H:P,H:P…
                           the started server uses this Redis Cluster (sets
                           REDIS_CLUSTER_NODES, instead of REDIS_URL)
  --delay-ms MS            a network between the parts: the started server reaches
                           its Redis (REDIS_URL) and its PostgreSQL/MySQL database
                           through a proxy process that delays every byte MS ms each
                           way, in order (not with a cluster, whose clients connect
                           to the addresses the nodes announce); the proxy's CPU over
                           the load is printed beside the server's

Report:
  --baseline               the same load, in the same run, against a bare node:http
                           server (one process, fixed JSON body); prints the
                           firstcome/baseline ratios of throughput, p99 and (when
                           the bench started both servers) server CPU per request
  --json FILE              write the report as JSON (its fields: BenchReport in
                           packages/bench/src/report.ts)
  --html FILE              write a self-contained HTML report with charts
  --no-progress            no live status line
  -h, --help               this text

Figures: throughput is answers / wall time; failed = timeouts + connection errors
+ answers the scenario does not expect (seed: 201 and 409 SOLD_OUT/ALREADY_ISSUED
are expected; draw: 202); latency percentiles cover answered requests. The client shares the
machine with the server: its CPU is printed beside the server's, and so is the
kernel's accept-queue overflow count (TcpExt ListenOverflows) over the run. A
server the bench started has its warnings and errors counted, start to stop, and
its most frequent messages printed after the table.
Client: ${CLIENT_NAME}.
Exit status: 0, or 1 when an invariant failed, 2 for bad flags.`

function positiveInt(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`--${name} must be an integer ≥ ${min}, got "${raw}"`)
  }
  return Number(raw)
}

function positiveNumber(name: string, raw: string | undefined): number | null {
  if (raw === undefined) return null
  const n = Number(raw)
  if (!/^\d+(\.\d+)?$/.test(raw) || !(n > 0)) {
    throw new ConfigError(`--${name} must be a positive number, got "${raw}"`)
  }
  return n
}

export function parseUsers(raw: string | undefined): UserIdRange {
  if (raw === undefined) return { min: 1, max: 10_000_000 }
  const m = /^(\d+)(?:\.\.|-)(\d+)$/.exec(raw.replace(/[_,]/g, ''))
  const min = Number(m?.[1])
  const max = Number(m?.[2])
  if (!m || min < 1 || max < min || !Number.isSafeInteger(max)) {
    throw new ConfigError(`--users must be MIN..MAX with 1 ≤ MIN ≤ MAX, got "${raw}"`)
  }
  return { min, max }
}

export function parseBenchArgs(args: string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      scenario: { type: 'string' },
      connections: { type: 'string', short: 'c' },
      duration: { type: 'string', short: 'd' },
      ramp: { type: 'string' },
      rate: { type: 'string' },
      users: { type: 'string' },
      timeout: { type: 'string' },
      processes: { type: 'string' },
      url: { type: 'string' },
      quantity: { type: 'string' },
      codes: { type: 'string' },
      coupon: { type: 'string' },
      'admin-token': { type: 'string' },
      'database-url': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'server-node-option': { type: 'string', multiple: true },
      'server-cpus': { type: 'string' },
      'redis-cluster-nodes': { type: 'string' },
      'delay-ms': { type: 'string' },
      warmup: { type: 'string' },
      baseline: { type: 'boolean', default: false },
      json: { type: 'string' },
      html: { type: 'string' },
      'no-progress': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  const scenario = values.scenario ?? 'seed'
  if (!(SCENARIOS as readonly string[]).includes(scenario)) {
    throw new ConfigError(`--scenario must be one of ${SCENARIOS.join(', ')}, got "${scenario}"`)
  }
  if (values.url !== undefined && !/^http:\/\/[^/]+/.test(values.url)) {
    throw new ConfigError('--url must be an http:// URL (the client speaks plain HTTP/1.1)')
  }
  const coupon = values.coupon === undefined ? null : positiveInt('coupon', values.coupon, 0)
  if (scenario === 'draw' && (coupon !== null || values.codes !== undefined)) {
    throw new ConfigError('the draw scenario creates its own coupon: no --coupon or --codes')
  }
  const delayMs = values['delay-ms'] === undefined ? null : parseDelayMs(values['delay-ms'])
  const clusterNodes = values['redis-cluster-nodes'] ?? null
  if (clusterNodes !== null && !/^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$/.test(clusterNodes)) {
    throw new ConfigError(
      `--redis-cluster-nodes must be host:port,host:port…, got "${clusterNodes}"`,
    )
  }
  if (values.url !== undefined && (delayMs !== null || clusterNodes !== null)) {
    throw new ConfigError(
      '--delay-ms and --redis-cluster-nodes apply to a server the bench starts, not --url',
    )
  }
  const serverCpus = values['server-cpus'] ?? null
  if (serverCpus !== null && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(serverCpus)) {
    throw new ConfigError(
      `--server-cpus must be a CPU list such as 0 or 0-1,3, got "${serverCpus}"`,
    )
  }
  if (values.url !== undefined && serverCpus !== null) {
    throw new ConfigError('--server-cpus applies to the servers the bench starts, not --url')
  }
  if (delayMs !== null && clusterNodes !== null) {
    throw new ConfigError('--delay-ms cannot be put in front of a cluster (--redis-cluster-nodes)')
  }
  return {
    scenario: scenario as ScenarioName,
    url: values.url ?? null,
    connections: positiveInt('connections', values.connections, 5000),
    durationS: positiveInt('duration', values.duration, 300),
    rampS: positiveInt('ramp', values.ramp, 0, 0),
    rate: positiveNumber('rate', values.rate),
    users: parseUsers(values.users),
    quantity: positiveInt('quantity', values.quantity, 500),
    codes: positiveInt('codes', values.codes, 0, 0),
    couponId: coupon,
    adminToken: values['admin-token'] ?? null,
    timeoutS: positiveInt('timeout', values.timeout, 30),
    processes: positiveInt('processes', values.processes, 1, 0),
    baseline: values.baseline,
    databaseUrl: values['database-url'] ?? null,
    drainTimeoutS: positiveInt('drain-timeout', values['drain-timeout'], 60),
    serverNodeOptions: values['server-node-option'] ?? [],
    serverCpus,
    delayMs,
    redisClusterNodes: clusterNodes,
    warmupS: positiveInt('warmup', values.warmup, 0, 0),
    progress: !values['no-progress'],
    command: ['firstcome', 'bench', ...args].join(' '),
    json: values.json ?? null,
    html: values.html ?? null,
  }
}

/**
 * What the run will do and for how long, said before anything starts: without
 * flags it loads for five minutes.
 */
export function describePlan(o: BenchOptions): string {
  const load =
    o.rate === null
      ? `${o.connections.toLocaleString('en-US')} looping connections`
      : `${o.rate.toLocaleString('en-US')} requests/s over up to ${o.connections.toLocaleString('en-US')} connections`
  const warmup = o.warmupS > 0 ? ` after a ${o.warmupS} s warm-up` : ''
  const baseline = o.baseline ? ', then the same against the bare baseline' : ''
  return `${o.scenario}: ${load} for ${o.durationS} s${warmup}${baseline}, then the checks (-d SECONDS and -c N change it; Ctrl-C stops)`
}

export async function runBench(args: string[]): Promise<void> {
  if (args[0] === 'drain') return runDrainCommand(args.slice(1))
  if (args[0] === 'gate') return runGateCommand(args.slice(1))
  const options = parseBenchArgs(args)
  if (options === 'help') {
    process.stdout.write(`${BENCH_USAGE}\n`)
    return
  }
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`)
  log(describePlan(options))
  // Interrupted: the servers the bench started and its temporary database go too.
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      log(`${signal}: stopping`)
      stopNow()
      process.exit(code)
    })
  }
  const report = await runBenchmark(options, process.env, log)
  process.stdout.write(renderText(report))
  if (options.json) {
    writeFileSync(options.json, `${JSON.stringify(report, null, 2)}\n`)
    log(`wrote ${options.json}`)
  }
  if (options.html) {
    writeFileSync(options.html, renderHtml(report))
    log(`wrote ${options.html}`)
  }
  if (!report.invariantsPass) process.exitCode = 1
}
