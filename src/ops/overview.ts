/**
 * The dashboard's one snapshot (GET /v1/admin/overview): where every current
 * coupon stands, the issue outcomes counted so far, the issue route's latency
 * buckets, and the health of the service. Computed at most once a second per
 * process whatever the number of viewers — the coupon figures and readiness
 * are themselves cached, and the metrics are one scrape of every API process —
 * so ten open dashboards cost what one does. Counters are totals since start:
 * the page turns successive snapshots into rates and recent percentiles.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import { ISSUE_ROUTE } from '../http/issue-endpoint.js'
import type { CouponFigure, CouponFigures } from './coupon-figures.js'
import type { Metrics } from './metrics.js'
import type { Readiness } from './readiness.js'

const FRESH_MS = 1000

export interface OverviewSources {
  figures: CouponFigures
  readiness: Readiness
  metrics: Metrics
  /** Redis mode: stream workers alive; embedded mode has none (the group commit) */
  workersAlive?: (() => Promise<number>) | undefined
  mode: 'embedded' | 'redis'
}

export interface CouponOverview extends CouponFigure {
  /** issue requests so far by outcome (WON or the refusal code), every process */
  outcomes: Record<string, number>
}

export interface OverviewSnapshot {
  /** epoch ms at which it was taken */
  at: number
  mode: 'embedded' | 'redis'
  health: Record<'gate' | 'queue' | 'database', boolean>
  apiProcesses: number
  /** null in embedded mode */
  workersAlive: number | null
  eventLoop: { lagP99Seconds: number | null; utilization: number | null }
  /** the issue route's latency histogram so far: [upper bound in seconds, count ≤ it] */
  issueLatency: [number, number][]
  coupons: CouponOverview[]
}

type Json = MetricObjectWithValues<MetricValue<string>>[]

export class Overview {
  readonly #o: OverviewSources
  #last: { at: number; snapshot: Promise<OverviewSnapshot> } | null = null

  constructor(sources: OverviewSources) {
    this.#o = sources
  }

  get(): Promise<OverviewSnapshot> {
    const now = Date.now()
    if (this.#last && now - this.#last.at < FRESH_MS) return this.#last.snapshot
    const snapshot = this.#take(now)
    this.#last = { at: now, snapshot }
    snapshot.catch(() => {
      if (this.#last?.snapshot === snapshot) this.#last = null
    })
    return snapshot
  }

  async #take(at: number): Promise<OverviewSnapshot> {
    const o = this.#o
    const [figures, ready, workers, json] = await Promise.all([
      o.figures.get(),
      o.readiness.state(),
      o.workersAlive?.().catch(() => 0) ?? null,
      o.metrics.scrape().then((r) => r.getMetricsAsJSON() as Promise<Json>),
    ])
    const values = (name: string) => json.find((m) => m.name === name)?.values ?? []
    const outcomes = new Map<string, Record<string, number>>()
    for (const v of values('firstcome_issue_outcomes_total')) {
      const coupon = String(v.labels.coupon)
      const byOutcome = outcomes.get(coupon) ?? {}
      byOutcome[String(v.labels.outcome)] = v.value
      outcomes.set(coupon, byOutcome)
    }
    const buckets = new Map<number, number>()
    for (const v of values('http_request_duration_seconds')) {
      const series = (v as { metricName?: string }).metricName
      if (series !== 'http_request_duration_seconds_bucket') continue
      if (v.labels.route !== ISSUE_ROUTE) continue
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le)
      buckets.set(le, (buckets.get(le) ?? 0) + v.value)
    }
    const first = (name: string) => values(name)[0]?.value ?? null
    const apiProcesses = values('firstcome_processes').find((v) => v.labels.role === 'api')
    return {
      at,
      mode: o.mode,
      health: {
        gate: ready.gate ?? true,
        queue: o.mode === 'redis' ? (workers ?? 0) > 0 : (ready.database ?? false),
        database: ready.database ?? false,
      },
      apiProcesses: apiProcesses?.value ?? 1,
      workersAlive: workers,
      eventLoop: {
        lagP99Seconds: first('nodejs_eventloop_lag_p99_seconds'),
        utilization: first('firstcome_event_loop_utilization_ratio'),
      },
      issueLatency: [...buckets].sort((a, b) => a[0] - b[0]),
      coupons: figures.map((f) => ({ ...f, outcomes: outcomes.get(String(f.id)) ?? {} })),
    }
  }
}
