/**
 * Prometheus metrics (prom-client) on a registry of the app's own, so several apps
 * in one process (tests) do not collide.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { IssueOutcome, Refusal } from '../domain/coupon.js'

const OUTCOMES: readonly (Refusal | 'WON')[] = [
  'WON',
  'COUPON_NOT_FOUND',
  'ISSUE_NOT_STARTED',
  'ISSUE_ENDED',
  'ALREADY_ISSUED',
  'SOLD_OUT',
]

export class Metrics {
  readonly registry = new Registry()
  readonly requestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })
  /**
   * Counted in #outcomeCounts on the issue path and added to the counter when it
   * is read (prom-client's inc() hashes the label set on every call, which on a
   * storm's path cost more than the refusal it counts).
   */
  readonly issueOutcomes: Counter<'outcome'>
  readonly persisted = new Counter({
    name: 'firstcome_wins_persisted_total',
    help: 'Wins written to the database by the worker or the group commit',
    registers: [this.registry],
  })
  readonly deadLettered = new Counter({
    name: 'firstcome_wins_dead_lettered_total',
    help: 'Stream entries moved to a dead-letter stream',
    registers: [this.registry],
  })
  readonly spent = new Counter({
    name: 'firstcome_coupons_spent_total',
    help: 'Coupons spent on an order (retries of the same order not counted), by coupon',
    labelNames: ['coupon'] as const,
    registers: [this.registry],
  })
  readonly backlog = new Gauge({
    name: 'firstcome_persist_backlog',
    help: 'Wins accepted but not yet written to the database, as last seen by this process',
    registers: [this.registry],
  })
  /** Counted here on the lane's path and added to the counter when it is read. */
  #fastLaneAnswers = 0
  readonly fastLane: Counter
  readonly #outcomeCounts = new Map<Refusal | 'WON', number>(OUTCOMES.map((o) => [o, 0]))
  /** request timers by "method route": this runs on every request */
  readonly #timers = new Map<string, RequestTimer>()

  constructor() {
    const counts = this.#outcomeCounts
    this.issueOutcomes = new Counter({
      name: 'firstcome_issue_outcomes_total',
      help: 'Issue requests by outcome (WON or the refusal code)',
      labelNames: ['outcome'] as const,
      registers: [this.registry],
      collect() {
        for (const [outcome, n] of counts) {
          if (n === 0) continue
          this.inc({ outcome }, n)
          counts.set(outcome, 0)
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

  countOutcome(outcome: IssueOutcome): void {
    const key = outcome.won ? 'WON' : outcome.refusal
    this.#outcomeCounts.set(key, (this.#outcomeCounts.get(key) ?? 0) + 1)
  }
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
