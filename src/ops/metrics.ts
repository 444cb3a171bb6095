/**
 * Prometheus metrics (prom-client) on a registry of the app's own, so several apps
 * in one process (tests) do not collide. Every metric says how it is aggregated
 * across API processes (cluster-metrics.ts): counters and histograms add up;
 * each gauge names its own rule.
 *
 * Labels are bounded: a coupon id (a coupon the service knows, or "none"), an
 * outcome, a route, a status, a dependency. Never a user id or an address.
 */
import { performance } from 'node:perf_hooks'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { type IssueOutcome, REFUSALS, type Refusal } from '../domain/coupon.js'
import { clusterScraper } from './cluster-metrics.js'
import type { Readiness } from './readiness.js'
import { dependencyGauge } from './scrape-gauges.js'

const OUTCOMES: readonly (Refusal | 'WON')[] = ['WON', ...REFUSALS]
const OUTCOME_INDEX = Object.fromEntries(OUTCOMES.map((o, i) => [o, i])) as Record<
  Refusal | 'WON',
  number
>
/** the coupon label of requests for a coupon that does not exist (any id: unbounded) */
export const NO_COUPON = 'none'

/** The causes of firstcome_wins_lost_total (see winsLost). */
const LOST_CAUSES = ['forgotten', 'rank_taken', 'beyond_quantity'] as const

const SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 256, 500, 1000, 2500, 5000, 10_000]
const FAST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

export class Metrics {
  readonly registry = new Registry()
  readonly requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: FAST_BUCKETS,
    registers: [this.registry],
  })
  /**
   * Counted in #outcomeCounts on the issue path and added to the counter when it
   * is read (prom-client's inc() hashes the label set on every call, which on a
   * storm's path cost more than the refusal it counts).
   */
  readonly issueOutcomes: Counter<'coupon' | 'outcome'>
  readonly persisted = new Counter({
    name: 'firstcome_wins_persisted_total',
    help: 'Rows added to coupon_issues: wins written by the stream worker, a spend of a queued win, the group commit or a draw (a win already a row is not counted again)',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  readonly deadLettered = new Counter({
    name: 'firstcome_wins_dead_lettered_total',
    help: 'Stream entries moved to a dead-letter stream',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  /**
   * Answered wins that will never be rows: Redis lost them before they were
   * persisted, or the database refused their rank (docs/operations.md, "When
   * Redis loses data"). cause: forgotten (the gate no longer holds the user after
   * it caught up with the database), rank_taken (the database holds the rank for
   * another user), beyond_quantity (the rank lies past the coupon's quantity).
   */
  readonly winsLost: Counter<'coupon' | 'cause'> = new Counter({
    name: 'firstcome_wins_lost_total',
    help: 'Answered wins lost to a Redis data loss or refused by the database, by cause',
    labelNames: ['coupon', 'cause'] as const,
    registers: [this.registry],
    // A zero for every coupon this process has persisted wins of, by each cause:
    // the series exists before the first loss, so increase() counts that one too.
    collect: async () => {
      for (const { labels } of (await this.persisted.get()).values)
        for (const cause of LOST_CAUSES) this.winsLost.inc({ coupon: labels.coupon, cause }, 0)
    },
  })
  /** Gates found behind the database (Redis lost data) and caught up from it. */
  readonly gateCatchUps = new Counter({
    name: 'firstcome_gate_catchups_total',
    help: 'Coupon gates found behind the database after a Redis data loss and caught up',
    registers: [this.registry],
  })
  readonly spent = new Counter({
    name: 'firstcome_coupons_spent_total',
    help: 'Coupons spent on an order (retries of the same order not counted), by coupon',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  readonly reclaimed = new Counter({
    name: 'firstcome_wins_reclaimed_total',
    help: 'Stream entries taken over from a worker that stopped answering',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  readonly gateDecision = new Histogram({
    name: 'firstcome_gate_decision_seconds',
    help: 'Time from sending a batch of issue requests to the gate to its answer',
    buckets: FAST_BUCKETS,
    registers: [this.registry],
  })
  readonly gateBatch = new Histogram({
    name: 'firstcome_gate_batch_size',
    help: 'Issue requests decided by one gate call',
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  })
  readonly gateErrors = new Counter({
    name: 'firstcome_gate_errors_total',
    help: 'Gate calls that failed, by kind (timeout, unavailable, error)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })
  readonly drawDuration = new Histogram({
    name: 'firstcome_draw_duration_seconds',
    help: 'Time of one opening draw, from closing the entries to its record',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30],
    registers: [this.registry],
  })
  readonly drawWinners = new Counter({
    name: 'firstcome_draw_winners_total',
    help: 'Winners drawn by opening draws, by coupon',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  readonly drawEntrants = new Counter({
    name: 'firstcome_draw_entrants_total',
    help: 'Entrants of the opening draws that have run, by coupon',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  readonly gateRebuilds = new Counter({
    name: 'firstcome_gate_rebuilds_total',
    help: 'Coupons whose gate state was loaded into Redis from the database',
    registers: [this.registry],
  })
  readonly persistBatch = new Histogram({
    name: 'firstcome_persist_batch_size',
    help: 'Wins given to one committed database transaction writing wins, by writer (stream, spend, group_commit), whether or not each became a new row: firstcome_wins_persisted_total counts those that did',
    labelNames: ['writer'] as const,
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  })
  readonly persistDuration = new Histogram({
    name: 'firstcome_persist_duration_seconds',
    help: 'Time of one database transaction writing wins, by writer and result',
    labelNames: ['writer', 'result'] as const,
    buckets: FAST_BUCKETS,
    registers: [this.registry],
  })
  readonly persistErrors = new Counter({
    name: 'firstcome_persist_errors_total',
    help: 'Database transactions writing wins that failed',
    labelNames: ['writer'] as const,
    registers: [this.registry],
  })
  readonly workerPasses = new Counter({
    name: 'firstcome_worker_passes_total',
    help: 'Passes of the stream worker over every coupon stream, by result',
    labelNames: ['result'] as const,
    registers: [this.registry],
  })
  readonly webhookDeliveries = new Counter({
    name: 'firstcome_webhook_deliveries_total',
    help: 'Webhook POSTs (batches of up to 100 events), by endpoint and outcome (delivered, failed)',
    labelNames: ['webhook', 'outcome'] as const,
    registers: [this.registry],
  })
  readonly webhookEvents = new Counter({
    name: 'firstcome_webhook_events_delivered_total',
    help: 'Events delivered to each webhook endpoint (a batch sent again counts again)',
    labelNames: ['webhook'] as const,
    registers: [this.registry],
  })
  /**
   * Redis mode: the gate's clock (Redis TIME, which judges every window) minus
   * this process's, at the last probe (GateClock). Processes of one host share a
   * clock: averaged.
   */
  readonly clockOffset = new Gauge({
    name: 'firstcome_clock_offset_seconds',
    help: "The gate's clock (Redis TIME, which judges every issue window) minus this process's clock",
    aggregator: 'average',
    registers: [this.registry],
  })
  readonly clockSkewed = new Gauge({
    name: 'firstcome_clock_skewed',
    help: "1 when this process's clock differs from the gate's by more than CLOCK_SKEW_BOUND_MS",
    aggregator: 'max',
    registers: [this.registry],
  })
  readonly shed = new Counter({
    name: 'firstcome_requests_shed_total',
    help: 'Requests refused before any work because the process was overloaded',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })
  readonly #outcomeCounts = new Map<number, number[]>()
  /** Counted here on the lane's path and added to the counter when it is read. */
  #fastLaneAnswers = 0
  readonly fastLane: Counter
  /** request timers by "method route": this runs on every request */
  readonly #timers = new Map<string, RequestTimer>()
  /** Every API process's metrics merged (this process's alone outside a cluster). */
  readonly scrape: () => Promise<Registry>

  constructor() {
    const counts = this.#outcomeCounts
    this.issueOutcomes = new Counter({
      name: 'firstcome_issue_outcomes_total',
      help: 'Issue requests by coupon and outcome (WON or the refusal code)',
      labelNames: ['coupon', 'outcome'] as const,
      registers: [this.registry],
      collect() {
        for (const [couponId, byOutcome] of counts) {
          const coupon = couponId === 0 ? NO_COUPON : String(couponId)
          for (let i = 0; i < byOutcome.length; i++) {
            const n = byOutcome[i] as number
            if (n === 0) continue
            this.inc({ coupon, outcome: OUTCOMES[i] as string }, n)
            byOutcome[i] = 0
          }
        }
      },
    })
    const metrics = this
    this.fastLane = new Counter({
      name: 'firstcome_issue_fast_lane_answers_total',
      help: 'Issue requests answered by the fast lane (the others went through Fastify)',
      registers: [this.registry],
      collect() {
        this.inc(metrics.#fastLaneAnswers)
        metrics.#fastLaneAnswers = 0
      },
    })
    collectDefaultMetrics({ register: this.registry })
    eventLoopUtilization(this.registry)
    this.scrape = clusterScraper(this.registry)
  }

  /** Each readiness check as a gauge, read when scraped. */
  watchReadiness(readiness: Readiness) {
    if (this.registry.getSingleMetric('firstcome_dependency_up')) return
    dependencyGauge(this.registry, readiness)
  }

  /** Open connections of the HTTP server, read when scraped. */
  watchConnections(server: { getConnections(cb: (err: Error | null, n: number) => void): void }) {
    if (this.registry.getSingleMetric('firstcome_http_open_connections')) return
    new Gauge({
      name: 'firstcome_http_open_connections',
      help: 'Client connections open on the HTTP server',
      registers: [this.registry],
      aggregator: 'sum',
      collect() {
        return new Promise<void>((resolve) =>
          server.getConnections((err, n) => {
            if (!err) this.set(n)
            resolve()
          }),
        )
      },
    })
  }

  /** A request refused 503 before any work, the process being overloaded. */
  countShed(reason: string): void {
    this.shed.inc({ reason })
  }

  countFastLaneAnswer(): void {
    this.#fastLaneAnswers++
  }

  /** The latency histogram of one route; keep it, it is looked up once. */
  requestTimer(method: string, route: string): RequestTimer {
    const key = `${method} ${route}`
    let timer = this.#timers.get(key)
    if (!timer) {
      timer = new RequestTimer(this.requestDuration, method, route)
      this.#timers.set(key, timer)
    }
    return timer
  }

  /** On the issue path: an array slot bumped, nothing hashed. */
  countOutcome(couponId: number, outcome: IssueOutcome): void {
    const key = outcome.won ? 'WON' : outcome.refusal
    const id = key === 'COUPON_NOT_FOUND' ? 0 : couponId
    let counts = this.#outcomeCounts.get(id)
    if (!counts) {
      counts = OUTCOMES.map(() => 0)
      this.#outcomeCounts.set(id, counts)
    }
    counts[OUTCOME_INDEX[key]] = (counts[OUTCOME_INDEX[key]] as number) + 1
  }

  /** A gate call answered; `started` from performance.now(). Once per batch. */
  gateDecided(started: number, size: number): void {
    this.gateDecision.observe((performance.now() - started) / 1000)
    this.gateBatch.observe(size)
  }

  gateFailed(err: unknown): void {
    this.gateErrors.inc({ kind: failureKind(err) })
  }

  /** One transaction writing wins ended; `started` from performance.now(). */
  persistTimed(writer: Writer, started: number, wins: number, ok: boolean): void {
    this.persistDuration.observe(
      { writer, result: ok ? 'ok' : 'error' },
      (performance.now() - started) / 1000,
    )
    if (ok) this.persistBatch.observe({ writer }, wins)
    else this.persistErrors.inc({ writer })
  }
}

/**
 * stream: the Redis-mode stream worker; group_commit: embedded mode's recorder;
 * spend: a spend of a QUEUED win, which persists it first (spend-service.ts)
 */
export type Writer = 'stream' | 'group_commit' | 'spend'

function failureKind(err: unknown): 'timeout' | 'unavailable' | 'error' {
  const messages: string[] = []
  for (let e: unknown = err; e instanceof Error; e = e.cause) messages.push(e.message)
  if (messages.some((m) => /timed? ?out/i.test(m))) return 'timeout'
  return err instanceof Error && err.name === 'UnavailableError' ? 'unavailable' : 'error'
}

/** The share of the time since the last scrape this process's event loop was busy. */
function eventLoopUtilization(registry: Registry) {
  let last = performance.eventLoopUtilization()
  new Gauge({
    name: 'firstcome_event_loop_utilization_ratio',
    help: 'Share of time the event loop was busy since the previous scrape (0-1)',
    registers: [registry],
    aggregator: 'max',
    collect() {
      const now = performance.eventLoopUtilization()
      this.set(performance.eventLoopUtilization(now, last).utilization)
      last = now
    },
  })
}

type DurationHistogram = Histogram<'method' | 'route' | 'status_code'>

/** One route's request latencies, with a label child per status, made once. */
export class RequestTimer {
  readonly #histogram: DurationHistogram
  readonly #method: string
  readonly #route: string
  readonly #byStatus = new Map<number, { observe(seconds: number): void }>()

  constructor(histogram: DurationHistogram, method: string, route: string) {
    this.#histogram = histogram
    this.#method = method
    this.#route = route
  }

  observe(status: number, seconds: number): void {
    let child = this.#byStatus.get(status)
    if (!child) {
      child = this.#histogram.labels(this.#method, this.#route, String(status))
      this.#byStatus.set(status, child)
    }
    child.observe(seconds)
  }
}
