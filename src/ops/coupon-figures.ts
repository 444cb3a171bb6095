/**
 * Where each current coupon stands — won, persisted, queued, remaining, and when
 * its oldest queued win was accepted; for a coupon with an opening draw, its
 * phase, entrants and winners — read at most once a second in a process
 * however many scrapes and dashboards ask (one coupon list from the database and
 * one gate count per coupon, plus in Redis mode the head of its stream; for the
 * draws, one query for their records and one gate count per draw not yet run).
 */
import type { DrawSummary } from '../db/draws-repo.js'
import { type Coupon, limitOf, remainingQuantity } from '../domain/coupon.js'

/** Coupons whose window ended longer ago than this are no longer shown or measured. */
const CURRENT_FOR_MS = 24 * 3_600_000
/** the newest coupons only: a bound on the gauges' series */
const MAX_COUPONS = 50
const FRESH_MS = 1000

export interface CouponFigure {
  id: number
  title: string
  totalQuantity: number | null
  /** partner codes the coupon holds */
  codes: number
  /** the quantity that applies: the codes', while fewer than totalQuantity; null: unlimited */
  limit: number | null
  /** epoch ms */
  issueStart: number
  issueEnd: number
  won: number
  persisted: number
  queued: number
  /** rows spent on an order (USED) */
  spent: number
  remaining: number | null
  /** epoch ms at which the oldest win not yet persisted was accepted; null: none queued */
  oldestQueuedAt: number | null
  /** the coupon's opening draw; null: none (first-come from issueStart) */
  draw: DrawFigure | null
}

/**
 * A draw's phase: `entries` until drawAt (entries are answered 202 from
 * issueStart), `drawing` from drawAt until its record is written, `drawn` after.
 */
export type DrawPhase = 'entries' | 'drawing' | 'drawn'

export interface DrawFigure {
  /** drawAt, epoch ms */
  at: number
  phase: DrawPhase
  /** users entered so far (the gate's count), or the record's once drawn */
  entrants: number
  /** the record's winners, once drawn: min(quantity, entrants) */
  winners: number | null
  /** epoch ms at which the record was written; null: not drawn */
  drawnAt: number | null
  /** hex SHA-256 of the seed, shown from the moment drawAt was set */
  commitment: string | null
}

export interface FigureSources {
  coupons: () => Promise<Coupon[]>
  won: (couponId: number) => Promise<number>
  /** how many rows of each of these coupons are spent */
  spent?: (couponIds: readonly number[]) => Promise<Map<number, number>>
  /** how many partner codes each of these coupons holds (absent: none) */
  codes?: (couponIds: readonly number[]) => Promise<Map<number, number>>
  /** Redis mode: the time of the first entry left in the coupon's stream */
  oldestQueuedAt?: (couponId: number) => Promise<number | null>
  /** the draws' records of these coupons (absent: no draw routes) */
  draws?: (couponIds: readonly number[]) => Promise<Map<number, DrawSummary>>
  /** users entered in the coupon's draw so far (the gate's count) */
  entrants?: (couponId: number) => Promise<number>
}

export class CouponFigures {
  readonly #sources: FigureSources
  #last: { at: number; figures: Promise<CouponFigure[]> } | null = null

  constructor(sources: FigureSources) {
    this.#sources = sources
  }

  /** The figures, at most a second old; one read in flight at a time. */
  get(): Promise<CouponFigure[]> {
    const now = Date.now()
    if (this.#last && now - this.#last.at < FRESH_MS) return this.#last.figures
    const figures = this.#read(now)
    this.#last = { at: now, figures }
    // A failed read is not remembered: the next caller tries again.
    figures.catch(() => {
      if (this.#last?.figures === figures) this.#last = null
    })
    return figures
  }

  async #read(now: number): Promise<CouponFigure[]> {
    const coupons = (await this.#sources.coupons())
      .filter((c) => c.issueEnd.getTime() > now - CURRENT_FOR_MS)
      .sort((a, b) => b.id - a.id)
      .slice(0, MAX_COUPONS)
    const ids = coupons.map((c) => c.id)
    const drawIds = coupons.filter((c) => c.drawAt !== null).map((c) => c.id)
    const [spent, codes, draws] = await Promise.all([
      this.#sources.spent?.(ids) ?? new Map<number, number>(),
      this.#sources.codes?.(ids) ?? new Map<number, number>(),
      this.#sources.draws?.(drawIds) ?? new Map<number, DrawSummary>(),
    ])
    return Promise.all(
      coupons.map((c) =>
        this.#figure(c, spent.get(c.id) ?? 0, codes.get(c.id) ?? 0, draws.get(c.id), now),
      ),
    )
  }

  async #drawFigure(
    c: Coupon,
    summary: DrawSummary | undefined,
    now: number,
  ): Promise<DrawFigure | null> {
    if (c.drawAt === null) return null
    const at = c.drawAt.getTime()
    const commitment = summary?.commitment ?? c.drawCommitment
    if (summary?.drawnAt) {
      const entrants = summary.entrants ?? 0
      return {
        at,
        phase: 'drawn',
        entrants,
        winners: Math.min(summary.quantity ?? 0, entrants),
        drawnAt: summary.drawnAt.getTime(),
        commitment,
      }
    }
    const entrants = (await this.#sources.entrants?.(c.id)) ?? 0
    const phase = now < at ? 'entries' : 'drawing'
    return { at, phase, entrants, winners: null, drawnAt: null, commitment }
  }

  async #figure(
    c: Coupon,
    spent: number,
    codes: number,
    summary: DrawSummary | undefined,
    now: number,
  ): Promise<CouponFigure> {
    const [won, oldest, draw] = await Promise.all([
      this.#sources.won(c.id),
      this.#sources.oldestQueuedAt?.(c.id) ?? null,
      this.#drawFigure(c, summary, now),
    ])
    const queued = Math.max(0, won - c.issuedQuantity)
    const limit = limitOf(c.totalQuantity, codes)
    return {
      id: c.id,
      title: c.title,
      totalQuantity: c.totalQuantity,
      codes,
      limit,
      issueStart: c.issueStart.getTime(),
      issueEnd: c.issueEnd.getTime(),
      won,
      persisted: c.issuedQuantity,
      queued,
      spent,
      remaining: remainingQuantity({ totalQuantity: limit }, won),
      oldestQueuedAt: queued > 0 ? oldest : null,
      draw,
    }
  }
}
