/**
 * The report of a bench, as written by `--json FILE` (and rendered as text and
 * HTML): BenchReport below, its fields described where they are declared.
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
  /** seconds of CPU per second of wall time */
  meanCores: number
}

/** One load against one server. */
export interface RunReport {
  target: string
  /** how the server was run */
  server: string
  couponId: number
  quantity: number | null
  /** from the first request to the last answer */
  wallSeconds: number
  requests: {
    /** answered + timeouts + connectionErrors */
    total: number
    answered: number
    /** timeouts + connectionErrors + unexpected answers */
    failed: number
    failureRate: number
    timeouts: number
    connectionErrors: number
    unexpectedStatus: number
    sent: number
  }
  /** answers / wall time, req/s */
  throughput: number
  /** of the answered requests */
  latencyMs: Percentiles
  /**
   * The same for the first request on each new connection alone: it waits for
   * the connect and in the server's accept queue (a busy Node server accepts
   * about one connection per event-loop turn).
   */
  firstRequestOnConnectionMs: Percentiles
  /** answers by status and code: { "201": n, "409 SOLD_OUT": n, … } */
  outcomes: Record<string, number>
  /** won: users answered with a win at least once (the draw scenario: the 202 users) */
  distinctUsers: { sent: number; answered: number; won: number }
  /** answers that were wins */
  winsAnswered: number
  /** one per second */
  timeline: SecondBucket[]
  clientCpu: CpuUse
  /** null when the bench did not start the server */
  serverCpu: CpuUse | null
  /**
   * The server's peak resident memory (its child processes included), MiB,
   * sampled every 0.5 s; null when the bench did not start it.
   */
  serverPeakRssMb: number | null
  /** the peak of its largest single process (one API process when API_PROCESSES > 1) */
  serverPeakProcessRssMb: number | null
  /** the kernel's listen-queue counters, deltas over the run; null when unknown */
  listenQueue: ListenCounters | null
  /** the first few connection error messages */
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
  /** the command line that produced it */
  command: string
  /** ISO-8601 */
  startedAt: string
  machine: { cpus: number; node: string; platform: string; somaxconn: number | null }
  load: LoadDescription
  /** baseline: null without --baseline */
  runs: { firstcome: RunReport; baseline: RunReport | null }
  /**
   * firstcome/baseline, or null without --baseline. serverCpuPerRequest (null
   * when unknown) does not depend on how much CPU the client and other
   * processes left to each server, so it varies less between runs.
   */
  ratios: { throughput: number; p99: number; serverCpuPerRequest: number | null } | null
  invariants: InvariantLine[] | null
  /** false when any invariant failed */
  invariantsPass: boolean
  /**
   * What the firstcome server the bench started logged at warn or above, start
   * to stop (its most frequent messages); null with --url.
   */
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
    distinctUsers: {
      sent: sum((r) => r.distinctSent),
      answered: sum((r) => r.distinctAnswered),
      won: sum((r) => r.distinctWon ?? 0),
    },
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
