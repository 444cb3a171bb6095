/**
 * The in-process StockGate: the embedded default. Every decision runs synchronously
 * on the event loop, so check-and-record is atomic without locks. One process only:
 * two processes would each hold their own stock.
 *
 * It forgets everything on exit; the embedded issue path writes every win, with
 * the id of the request that won it, to the database before answering, and
 * `restore` rebuilds the gate from it at start: the same request asked again
 * after a restart (a client's retry with its Idempotency-Key) gets its win again.
 * A rebuilt coupon whose persisted ranks have gaps (wins granted but never written,
 * hence never answered) hands out those ranks first.
 */
import {
  type CouponRules,
  decideIssue,
  type IssueOutcome,
  quantityBelowWon,
  rankHoles,
  type Win,
} from '../domain/coupon.js'
import { newRequestId } from '../domain/request-id.js'
import type { ConfigureResult, StockGate } from './stock-gate.js'

interface CouponStock {
  rules: CouponRules
  /** userId → the win, with the id of the request that won it */
  winners: Map<string, Win>
  /** free ranks below the highest in use, ascending */
  holes: number[]
}

export class MemoryStockGate implements StockGate {
  readonly #coupons = new Map<number, CouponStock>()

  /** Loads a coupon with the wins already persisted for it. */
  restore(rules: CouponRules, wins: readonly Win[]): void {
    const winners = new Map<string, Win>()
    for (const w of wins) winners.set(w.userId, w)
    this.#coupons.set(rules.couponId, {
      rules,
      winners,
      holes: rankHoles(wins.map((w) => w.rank)),
    })
  }

  async register(rules: CouponRules): Promise<void> {
    this.restore(rules, [])
  }

  async configure(rules: CouponRules): Promise<ConfigureResult> {
    const stock = this.#coupons.get(rules.couponId)
    if (!stock) return 'NOT_LOADED'
    if (quantityBelowWon(rules.totalQuantity, stock.winners.size)) return 'QUANTITY_BELOW_ISSUED'
    stock.rules = rules
    return 'OK'
  }

  async tryIssue(
    couponId: number,
    userId: string,
    now: number,
    requestId: string = newRequestId(),
  ): Promise<IssueOutcome> {
    const stock = this.#coupons.get(couponId)
    if (!stock) return { won: false, refusal: 'COUPON_NOT_FOUND' }
    // This very request's win (granted inside the window, whenever it is asked again).
    const held = stock.winners.get(userId)
    if (held && held.requestId === requestId) return { won: true, win: held }
    const refusal = decideIssue(stock.rules, stock.winners.has(userId), stock.winners.size, now)
    if (refusal) return { won: false, refusal }
    const rank = stock.holes.length > 0 ? (stock.holes.shift() as number) : stock.winners.size + 1
    const win: Win = { couponId, userId, rank, issuedAt: now, requestId }
    stock.winners.set(userId, win)
    return { won: true, win }
  }

  async lookup(couponId: number, userId: string): Promise<Win | null> {
    return this.#coupons.get(couponId)?.winners.get(userId) ?? null
  }

  /** Every coupon is loaded here (restored at start, added on create). */
  lookupLoaded(couponId: number, userId: string): Promise<Win | null | 'NOT_LOADED'> {
    return this.lookup(couponId, userId)
  }

  async ensureLoaded(couponId: number): Promise<boolean> {
    return this.#coupons.has(couponId)
  }

  async won(couponId: number): Promise<number> {
    return this.#coupons.get(couponId)?.winners.size ?? 0
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}
