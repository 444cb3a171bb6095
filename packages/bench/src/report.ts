/**
 * The report of a bench, as written by `--json FILE` (and rendered as text and
 * HTML). Fields:
 *
 *   version            1
 *   command            the command line that produced it
 *   startedAt          ISO-8601
 *   machine            { cpus, node, platform, somaxconn }
 *   load               { scenario, shape: closed|open, connections, durationSeconds,
 *                        rampSeconds, rate, users, timeoutSeconds,
 *                        warmupSeconds, client, clientProcesses }
 *   runs.firstcome     a RunReport (below)
 *   runs.baseline      a RunReport, or null without --baseline
 *   ratios             { throughput, p99, serverCpuPerRequest } firstcome/baseline,
 *                      or null; serverCpuPerRequest (null when unknown) does not
 *                      depend on how much CPU the client and other processes
 *                      left to each server, so it varies less between runs
 *   invariants         [{ name, ok (true|false|null = not checked), detail }], or null
 *   invariantsPass     false when any invariant failed
 *   serverLog          { warnings, errors, messages: [{ level, message, count }] }:
 *                      what the firstcome server the bench started logged at warn
 *                      or above from start to stop (the five most frequent
 *                      messages); null with --url
 *
 * RunReport:
 *   target, server (how it was run), couponId, quantity
 *   wallSeconds        from the first request to the last answer
 *   requests           { total, answered, failed, failureRate, timeouts,
 *                        connectionErrors, unexpectedStatus, sent }
 *                      total = answered + timeouts + connectionErrors;
 *                      failed = timeouts + connectionErrors + unexpected answers
 *   throughput         answers / wall time (req/s)
 *   latencyMs          { count, mean, p50, p70, p90, p95, p99, max } of answered requests
 *   firstRequestOnConnectionMs  the same for the first request on each new
 *                      connection alone: it waits for the connect and in the
 *                      server's accept queue (a busy Node server accepts about one
 *                      connection per event-loop turn)
 *   outcomes           { "201": n, "409 SOLD_OUT": n, … }
 *   distinctUsers      { sent, answered }
 *   timeline           [{ second, responses, errors, latency }] one per second
 *   clientCpu          { seconds, perRequestMicros, meanCores }
 *   serverCpu          same, or null when the bench did not start the server
 *   serverPeakRssMb    the server's peak resident memory (its child processes
 *                      included), sampled every 0.5 s; null when not started here
 *   serverPeakProcessRssMb  the peak of its largest single process (one API
 *                      process when API_PROCESSES > 1)
 *   listenQueue        { listenOverflows, listenDrops } deltas over the run, or null
 *   errorSamples       the first few connection error messages
 */
import type { ClientRun } from './clients.js'
import type { InvariantLine } from './invariants.js'
import type { ListenCounters, Rss } from './kernel.js'
import { expectationFor, tallyOutcomes } from './outcomes.js'
import type { ScenarioName } from './scenarios.js'
import type { ServerLogSummary } from './server-log.js'
import {
  addCounts,
  mergeHistograms,
  mergeTimeline,
  type Percentiles,
  percentiles,
  type SecondBucket,
  throughput,
} from './stats.js'

export interface CpuUse {
  seconds: number
  perRequestMicros: number
  meanCores: number
}

export interface RunReport {
  target: string
  server: string
  couponId: number
  quantity: number | null
  wallSeconds: number
  requests: {
    total: number
    answered: number
    failed: number
    failureRate: number
    timeouts: number
    connectionErrors: number
    unexpectedStatus: number
    sent: number
  }
  throughput: number
  latencyMs: Percentiles
  firstRequestOnConnectionMs: Percentiles
  outcomes: Record<string, number>
  distinctUsers: { sent: number; answered: number }
  winsAnswered: number
  timeline: SecondBucket[]
  clientCpu: CpuUse
  serverCpu: CpuUse | null
  /** the most resident memory the server (with its child processes) used, MiB */
  serverPeakRssMb: number | null
  serverPeakProcessRssMb: number | null
  listenQueue: ListenCounters | null
  errorSamples: string[]
}

export interface LoadDescription {
  scenario: ScenarioName
  shape: 'closed' | 'open'
  connections: number
  durationSeconds: number
  rampSeconds: number
  rate: number | null
  users: string
  timeoutSeconds: number
  warmupSeconds: number
  client: string
  clientProcesses: number
}

export interface BenchReport {
  version: 1
  command: string
  startedAt: string
  machine: { cpus: number; node: string; platform: string; somaxconn: number | null }
  load: LoadDescription
  runs: { firstcome: RunReport; baseline: RunReport | null }
  ratios: { throughput: number; p99: number; serverCpuPerRequest: number | null } | null
  invariants: InvariantLine[] | null
  invariantsPass: boolean
  /** what the firstcome server the bench started logged at warn or above, start to stop (null: --url) */
  serverLog: ServerLogSummary | null
}

/** bytes → MiB with one decimal */
function mib(bytes: number): number {
  return Math.round(bytes / 104_857.6) / 10
}

function cpu(ms: number, answered: number, wallSeconds: number): CpuUse {
  return {
    seconds: Math.round(ms) / 1000,
    perRequestMicros: answered > 0 ? Math.round((ms * 10_000) / answered) / 10 : 0,
    meanCores: wallSeconds > 0 ? Math.round(ms / wallSeconds) / 1000 : 0,
  }
}

export interface RunFacts {
  target: string
  server: string
  couponId: number
  quantity: number | null
  scenario: ScenarioName
  clients: ClientRun
  samples: { second: number; responses: number; errors: number; histogram: string }[]
  serverCpuMs: number | null
  serverPeakRss: Rss | null
  listenQueue: ListenCounters | null
}

/** Adds up what the client processes recorded into one run's figures. */
export function buildRunReport(f: RunFacts): RunReport {
  const results = f.clients.results
  const sum = (pick: (r: (typeof results)[number]) => number) =>
    results.reduce((acc, r) => acc + pick(r), 0)
  const outcomes: Record<string, number> = {}
  for (const r of results) addCounts(outcomes, r.counts)
  const tally = tallyOutcomes(outcomes, expectationFor(f.scenario))
  const answered = sum((r) => r.answered)
  const timeouts = sum((r) => r.timeouts)
  const connectionErrors = sum((r) => r.connectionErrors)
  const total = answered + timeouts + connectionErrors
  const failed = timeouts + connectionErrors + tally.unexpected
  const wallMs = Math.max(0, ...results.map((r) => r.lastEventMs))
  const wallSeconds = Math.round(wallMs) / 1000
  return {
    target: f.target,
    server: f.server,
    couponId: f.couponId,
    quantity: f.quantity,
    wallSeconds,
    requests: {
      total,
      answered,
      failed,
      failureRate: total > 0 ? failed / total : 0,
      timeouts,
      connectionErrors,
      unexpectedStatus: tally.unexpected,
      sent: sum((r) => r.sent),
    },
    throughput: throughput(answered, wallMs),
    latencyMs: percentiles(mergeHistograms(results.map((r) => r.histogram))),
    firstRequestOnConnectionMs: percentiles(mergeHistograms(results.map((r) => r.freshHistogram))),
    outcomes,
    distinctUsers: { sent: sum((r) => r.distinctSent), answered: sum((r) => r.distinctAnswered) },
    winsAnswered: tally.wins,
    timeline: mergeTimeline(f.samples),
    clientCpu: cpu(
      sum((r) => r.cpuUserMs + r.cpuSystemMs),
      answered,
      wallSeconds,
    ),
    serverCpu: f.serverCpuMs === null ? null : cpu(f.serverCpuMs, answered, wallSeconds),
    serverPeakRssMb: f.serverPeakRss === null ? null : mib(f.serverPeakRss.total),
    serverPeakProcessRssMb: f.serverPeakRss === null ? null : mib(f.serverPeakRss.largest),
    listenQueue: f.listenQueue,
    errorSamples: [...new Set(results.flatMap((r) => r.errorSamples))].slice(0, 5),
  }
}

export function ratios(firstcome: RunReport, baseline: RunReport | null) {
  if (!baseline) return null
  const r = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 1000) / 1000 : 0)
  return {
    throughput: r(firstcome.throughput, baseline.throughput),
    p99: r(firstcome.latencyMs.p99, baseline.latencyMs.p99),
    serverCpuPerRequest:
      firstcome.serverCpu && baseline.serverCpu
        ? r(firstcome.serverCpu.perRequestMicros, baseline.serverCpu.perRequestMicros)
        : null,
  }
}
