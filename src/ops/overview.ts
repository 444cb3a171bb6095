/**
 * The dashboard's one snapshot (GET /v1/admin/overview): where every current
 * coupon stands, the issue outcomes counted so far, the issue route's latency
 * buckets, and the health of the service — for the whole deployment, whichever
 * API process answers: the counters are every live API process's (ApiFleet).
 * Computed at most once a second per process whatever the number of viewers —
 * the coupon figures and readiness are themselves cached — so ten open
 * dashboards cost what one does. Counters are totals since each live process
 * started: the page turns successive snapshots into rates and recent
 * percentiles.
 */
import { createHash } from 'node:crypto'
import type { ProcessShare } from './api-fleet.js'
import type { CouponFigure, CouponFigures } from './coupon-figures.js'
import { mergeFigures } from './process-figures.js'
import type { Readiness } from './readiness.js'

const FRESH_MS = 1000

export interface OverviewSources {
  figures: CouponFigures
  readiness: Readiness
  /** every live API process's figures (ApiFleet) */
  processes: () => Promise<ProcessShare[]>
  /** Redis mode: stream workers alive; embedded mode has none (the group commit) */
  workersAlive?: (() => Promise<number>) | undefined
  mode: 'embedded' | 'redis'
  /** each webhook endpoint's lag and last outcome (none: no events routes) */
  webhooks?: (() => Promise<WebhookOverview[]>) | undefined
}

export interface WebhookOverview {
  id: number
  url: string
  state: string
  lagEvents: number
  lagSeconds: number
  lastStatus: number | null
  lastError: string | null
}

export interface CouponOverview extends CouponFigure {
  /** issue requests so far by outcome (WON or the refusal code), every live API process */
  outcomes: Record<string, number>
  /**
   * answered wins lost to a Redis data loss or refused by the database, counted
   * by every live API process (and the workers running in them)
   */
  lost: number
}

export interface OverviewSnapshot {
  /** epoch ms at which it was taken */
  at: number
  mode: 'embedded' | 'redis'
  /** clock: no live API process's clock is past CLOCK_SKEW_BOUND_MS from the gate's */
  health: Record<'gate' | 'queue' | 'database' | 'clock', boolean>
  /** API processes live in the deployment; null: their figures cannot be read (Redis down) */
  apiProcesses: number | null
  /**
   * Which processes the counters add up: a digest of their ids. Rates are
   * differences of two snapshots of the same fleet only (a process that died
   * or started takes its counts out or in at once).
   */
  fleet: string | null
  /** null in embedded mode */
  workersAlive: number | null
  /**
   * the gate's clock minus an API process's, seconds: the live process farthest
   * off (null: embedded mode, or not known)
   */
  clockOffsetSeconds: number | null
  /** the busiest API process's */
  eventLoop: { lagP99Seconds: number | null; utilization: number | null }
  /** the issue route's latency histogram so far, every live API process's buckets summed: [upper bound in seconds, count ≤ it] */
  issueLatency: [number, number][]
  coupons: CouponOverview[]
  webhooks: WebhookOverview[]
}

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
    const [figures, ready, workers, processes, webhooks] = await Promise.all([
      o.figures.get(),
      o.readiness.state(),
      o.workersAlive?.().catch(() => 0) ?? null,
      o.processes().catch(() => null),
      o.webhooks?.().catch(() => []) ?? [],
    ])
    const merged = mergeFigures((processes ?? []).map((p) => p.figures))
    const bound = (le: string) => (le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le))
    return {
      at,
      mode: o.mode,
      health: {
        gate: ready.gate ?? true,
        queue: o.mode === 'redis' ? (workers ?? 0) > 0 : (ready.database ?? false),
        database: ready.database ?? false,
        clock: !merged.clockSkewed,
      },
      clockOffsetSeconds: merged.clockOffsetSeconds ?? null,
      apiProcesses: processes?.length ?? null,
      fleet: processes && fleetOf(processes),
      workersAlive: workers,
      eventLoop: { lagP99Seconds: merged.lagP99Seconds, utilization: merged.utilization },
      issueLatency: Object.entries(merged.issueLatency)
        .map(([le, n]): [number, number] => [bound(le), n])
        .sort((a, b) => a[0] - b[0]),
      coupons: figures.map((f) => ({
        ...f,
        outcomes: merged.outcomes[String(f.id)] ?? {},
        lost: merged.lost?.[String(f.id)] ?? 0,
      })),
      webhooks,
    }
  }
}

function fleetOf(processes: readonly ProcessShare[]): string {
  const ids = processes.map((p) => p.id).sort()
  return createHash('sha256').update(ids.join('\n')).digest('base64url').slice(0, 16)
}
