/**
 * One API process's share of the dashboard's overview — the issue outcomes it
 * counted, its issue route's latency histogram, its event loop — and how the
 * shares of every live process add up. Read from the process's own registry
 * (the counters the issue path already keeps), nothing added to the path.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { Registry } from 'prom-client'

export interface ProcessFigures {
  /** issue requests since the process started, by coupon label, then by outcome (WON or the refusal code) */
  outcomes: Record<string, Record<string, number>>
  /** the issue route's latency histogram: Prometheus's `le` bound ("0.005", "+Inf") → requests ≤ it */
  issueLatency: Record<string, number>
  /** answered wins lost (firstcome_wins_lost_total, every cause), by coupon label */
  lost?: Record<string, number>
  /** the loop's delay p99 since the previous reading */
  lagP99Seconds: number | null
  /** the share of the time since the previous reading the loop was busy (0-1) */
  utilization: number | null
  /**
   * Redis mode: the gate's clock (Redis TIME) minus this process's, seconds, at
   * the last probe; null: not known (embedded mode: one process, one clock)
   */
  clockOffsetSeconds?: number | null
  /** past CLOCK_SKEW_BOUND_MS */
  clockSkewed?: boolean
}

/** Where this process's clock stands against the gate's (GateClock). */
export interface ClockReading {
  readonly offsetMs: number | null
  readonly skewed: boolean
}

interface Sample {
  labels: Record<string, string | number | undefined>
  value: number
  metricName?: string
}

const samplesOf = async (registry: Registry, name: string): Promise<Sample[]> =>
  ((await registry.getSingleMetric(name)?.get())?.values as Sample[] | undefined) ?? []

/**
 * Reads this process's figures from `registry`, the latency of `issueRoute`.
 * The loop is measured here (a delay monitor and a utilization baseline of its
 * own), so the readings leave what a Prometheus scrape sees untouched.
 */
export function processFiguresOf(
  registry: Registry,
  issueRoute: string,
  clock?: ClockReading,
): () => Promise<ProcessFigures> {
  const delay = monitorEventLoopDelay()
  delay.enable()
  let busy = performance.eventLoopUtilization()
  return async () => {
    const outcomes: ProcessFigures['outcomes'] = {}
    for (const v of await samplesOf(registry, 'firstcome_issue_outcomes_total')) {
      const coupon = String(v.labels.coupon)
      outcomes[coupon] ??= {}
      outcomes[coupon][String(v.labels.outcome)] = v.value
    }
    const issueLatency: ProcessFigures['issueLatency'] = {}
    for (const v of await samplesOf(registry, 'http_request_duration_seconds')) {
      if (v.metricName !== 'http_request_duration_seconds_bucket') continue
      if (v.labels.route !== issueRoute) continue
      const le = String(v.labels.le)
      issueLatency[le] = (issueLatency[le] ?? 0) + v.value
    }
    const lost: Record<string, number> = {}
    for (const v of await samplesOf(registry, 'firstcome_wins_lost_total')) {
      const coupon = String(v.labels.coupon)
      lost[coupon] = (lost[coupon] ?? 0) + v.value
    }
    const lag = delay.count > 0 ? delay.percentile(99) / 1e9 : null
    delay.reset()
    const now = performance.eventLoopUtilization()
    const utilization = performance.eventLoopUtilization(now, busy).utilization
    busy = now
    const figures: ProcessFigures = {
      outcomes,
      issueLatency,
      lost,
      lagP99Seconds: lag,
      utilization,
    }
    if (clock) {
      figures.clockOffsetSeconds = clock.offsetMs === null ? null : clock.offsetMs / 1000
      figures.clockSkewed = clock.skewed
    }
    return figures
  }
}

/** Adds each count of `more` into `into`, and returns `into`. */
function addUp(into: Record<string, number>, more: Record<string, number>): Record<string, number> {
  for (const [key, n] of Object.entries(more)) into[key] = (into[key] ?? 0) + n
  return into
}

const worst = (values: (number | null)[]): number | null =>
  values.reduce<number | null>((a, v) => (v === null ? a : a === null ? v : Math.max(a, v)), null)

/**
 * The deployment's figures from every live process's: counters and histogram
 * buckets summed (a percentile is computed from the merged buckets, never
 * averaged), the event loop and the clock offset the worst process's.
 */
export function mergeFigures(shares: readonly ProcessFigures[]): ProcessFigures {
  const outcomes: ProcessFigures['outcomes'] = {}
  const issueLatency: ProcessFigures['issueLatency'] = {}
  const lost: Record<string, number> = {}
  for (const share of shares) {
    for (const [coupon, byOutcome] of Object.entries(share.outcomes)) {
      outcomes[coupon] = addUp(outcomes[coupon] ?? {}, byOutcome)
    }
    addUp(issueLatency, share.issueLatency)
    addUp(lost, share.lost ?? {})
  }
  // The offset farthest from zero, with its sign.
  let clockOffsetSeconds: number | null = null
  for (const s of shares) {
    const o = s.clockOffsetSeconds ?? null
    if (o !== null && (clockOffsetSeconds === null || Math.abs(o) > Math.abs(clockOffsetSeconds)))
      clockOffsetSeconds = o
  }
  return {
    outcomes,
    issueLatency,
    lost,
    lagP99Seconds: worst(shares.map((s) => s.lagP99Seconds)),
    utilization: worst(shares.map((s) => s.utilization)),
    clockOffsetSeconds,
    clockSkewed: shares.some((s) => s.clockSkewed === true),
  }
}
