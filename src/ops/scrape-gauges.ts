/**
 * Gauges read when they are scraped: where each coupon stands, which
 * dependencies answer, how many workers are alive. Every API process computes
 * the same values from the same sources, so across processes the largest is
 * kept ('max'), except readiness, where one process that cannot reach a
 * dependency is enough to say it is down ('min').
 */
import { Gauge, type Registry } from 'prom-client'
import type { CouponFigure, CouponFigures } from './coupon-figures.js'
import type { Readiness } from './readiness.js'

type Figure = keyof Pick<CouponFigure, 'won' | 'persisted' | 'queued' | 'remaining'>

const COUPON_GAUGES: [Figure, string][] = [
  ['won', 'Wins the gate has accepted for the coupon'],
  ['persisted', 'Wins of the coupon written to the database'],
  ['queued', 'Wins of the coupon accepted but not yet written to the database'],
  ['remaining', 'Coupons left to win (absent for an unlimited coupon)'],
]

/**
 * A gauge per coupon, computed from the coupons' figures when scraped: `figureOf`
 * gives a coupon's value at `now` (epoch ms), or null for no series.
 */
function couponGauge(
  registry: Registry,
  figures: CouponFigures,
  name: string,
  help: string,
  figureOf: (f: CouponFigure, now: number) => number | null,
): void {
  new Gauge({
    name,
    help,
    labelNames: ['coupon'] as const,
    registers: [registry],
    aggregator: 'max',
    async collect() {
      const list = await figures.get().catch(() => null)
      this.reset()
      const now = Date.now()
      for (const f of list ?? []) {
        const value = figureOf(f, now)
        if (value !== null) this.set({ coupon: String(f.id) }, value)
      }
    },
  })
}

export function couponGauges(registry: Registry, figures: CouponFigures): void {
  const gauge = (
    name: string,
    help: string,
    figureOf: (f: CouponFigure, now: number) => number | null,
  ) => couponGauge(registry, figures, name, help, figureOf)
  for (const [figure, help] of COUPON_GAUGES)
    gauge(`firstcome_coupon_${figure}`, help, (f) => f[figure])
  gauge(
    'firstcome_queue_oldest_age_seconds',
    'Age of the oldest win of the coupon not yet written to the database (0: none queued)',
    (f, now) => (f.oldestQueuedAt === null ? 0 : Math.max(0, now - f.oldestQueuedAt) / 1000),
  )
  // The opening draws: only coupons that have one get these series.
  gauge(
    'firstcome_coupon_entrants',
    "Users entered in the coupon's opening draw (live until the draw, then its record's)",
    (f) => (f.draw ? f.draw.entrants : null),
  )
  gauge(
    'firstcome_draw_overdue_seconds',
    "Seconds since the coupon's drawAt while its draw is not recorded (0: not due yet, or drawn)",
    (f, now) => {
      if (!f.draw) return null
      return f.draw.phase === 'drawn' ? 0 : Math.max(0, now - f.draw.at) / 1000
    },
  )
}

export function dependencyGauge(registry: Registry, readiness: Readiness): void {
  new Gauge({
    name: 'firstcome_dependency_up',
    help: 'Whether a dependency answers its readiness check (1) or not (0)',
    labelNames: ['dependency'] as const,
    registers: [registry],
    aggregator: 'min',
    async collect() {
      for (const [dependency, up] of Object.entries(await readiness.state()))
        this.set({ dependency }, up ? 1 : 0)
    },
  })
}

export function workerGauge(registry: Registry, alive: () => Promise<number>): void {
  let last = { at: 0, value: Promise.resolve(0) }
  new Gauge({
    name: 'firstcome_workers_alive',
    help: 'Stream workers that made a pass within the last 15 seconds, on every host',
    registers: [registry],
    aggregator: 'max',
    async collect() {
      if (Date.now() - last.at >= 1000) last = { at: Date.now(), value: alive() }
      const n = await last.value.catch(() => null)
      if (n !== null) this.set(n)
    },
  })
}

export function processGauge(registry: Registry, role: 'api' | 'worker'): void {
  new Gauge({
    name: 'firstcome_processes',
    help: 'Processes answering this scrape, by role (API processes of one host add up)',
    labelNames: ['role'] as const,
    registers: [registry],
    aggregator: 'sum',
  }).set({ role }, 1)
}
