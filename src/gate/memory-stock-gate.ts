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
import type { StoredCoupon } from '../coupon-state/gate-source.js'
import {
  type CouponRules,
  decideIssue,
  type IssueOutcome,
  limitedRules,
  quantityBelowWon,
  rankHoles,
  type Win,
  windowRefusal,
} from '../domain/coupon.js'
import { newRequestId } from '../domain/request-id.js'
import type { DrawSeeds } from '../draw/seeds.js'
import { pseudonymOf } from '../draw/shuffle.js'
import type { ConfigureResult, EntryState, StockGate } from './stock-gate.js'

/** A coupon's opening draw, as the gate holds it. */
interface DrawStock {
  at: number
  /** open: entries taken; closed: being drawn; drawn: run, first-come from here */
  state: 'open' | 'closed' | 'drawn'
  /** userId → pseudonym */
  entrants: Map<string, string>
  /**
   * entrants taken here whose write has not yet succeeded: a failed write
   * (answered 503) takes them out again, so they are never told ENTERED
   * while the database, which the draw reads, lacks them
   */
  unwritten: Set<string>
}

function openDraw(at: number, state: DrawStock['state'] = 'open'): DrawStock {
  return { at, state, entrants: new Map(), unwritten: new Set() }
}

interface CouponStock {
  rules: CouponRules
  /** the rules with the limit that applies (the codes', while they are fewer) */
  limited: CouponRules
  /** partner codes 1..n: code number r at index r - 1 */
  codes: string[]
  /** userId → the win, with the id of the request that won it */
  winners: Map<string, Win>
  /** free ranks below the highest in use, ascending */
  holes: number[]
  draw: DrawStock | null
}

/** What a restored coupon's draw holds: entrants (pseudonym, userId), and whether it has run. */
export interface DrawSnapshot {
  drawn: boolean
  entrants: readonly { pseudonym: string; userId: string }[]
}

/** Partner codes are restored this many at a time: a million rows at once would peak the heap. */
const RESTORE_CODES_CHUNK = 20_000

/** An in-process gate rebuilt from the system of record: every coupon, draws' entrants included. */
export async function restoreMemoryGate(
  coupons: AsyncIterable<StoredCoupon>,
  seeds: DrawSeeds | null,
): Promise<MemoryStockGate> {
  const gate = new MemoryStockGate(seeds)
  for await (const coupon of coupons) {
    gate.restore(coupon.rules, coupon.wins, [], {
      drawn: coupon.drawn ?? false,
      entrants: coupon.entrants,
    })
    for (let seq = 1; ; ) {
      const codes = await coupon.readCodes(seq, RESTORE_CODES_CHUNK)
      if (codes.length === 0) break
      await gate.appendCodes(coupon.rules.couponId, seq, codes)
      seq += codes.length
    }
  }
  return gate
}

export class MemoryStockGate implements StockGate {
  readonly #coupons = new Map<number, CouponStock>()
  readonly #seeds: DrawSeeds | null

  /** seeds: where a draw coupon's seed is read (null: no draws) */
  constructor(seeds: DrawSeeds | null = null) {
    this.#seeds = seeds
  }

  /** Loads a coupon with the wins already persisted for it its partner codes and its draw's entrants. */
  restore(
    rules: CouponRules,
    wins: readonly Win[],
    codes: readonly string[] = [],
    draw?: DrawSnapshot,
  ): void {
    const winners = new Map<string, Win>()
    for (const w of wins) winners.set(w.userId, w)
    let drawStock: DrawStock | null = null
    if (rules.drawAt != null) {
      drawStock = openDraw(rules.drawAt, draw?.drawn ? 'drawn' : 'open')
      for (const e of draw?.entrants ?? []) drawStock.entrants.set(e.userId, e.pseudonym)
    }
    this.#coupons.set(rules.couponId, {
      rules,
      limited: limitedRules(rules, codes.length),
      codes: [...codes],
      winners,
      holes: rankHoles(wins.map((w) => w.rank)),
      draw: drawStock,
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
    stock.limited = limitedRules(rules, stock.codes.length)
    if (stock.draw?.state !== 'drawn') {
      if (rules.drawAt == null) stock.draw = null
      else if (stock.draw) stock.draw.at = rules.drawAt
      else stock.draw = openDraw(rules.drawAt)
    }
    return 'OK'
  }

  async appendCodes(
    couponId: number,
    firstSeq: number,
    codes: readonly string[],
  ): Promise<number | 'NOT_LOADED'> {
    const stock = this.#coupons.get(couponId)
    if (!stock) return 'NOT_LOADED'
    const held = stock.codes.length
    if (held < firstSeq - 1) return held
    for (let i = held - firstSeq + 1; i < codes.length; i++) stock.codes.push(codes[i] as string)
    stock.limited = limitedRules(stock.rules, stock.codes.length)
    return stock.codes.length
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
    if (held && held.requestId === requestId) return withCode(stock, held)
    if (stock.draw && stock.draw.state !== 'drawn') return this.#enter(stock, userId, now)
    const refusal = decideIssue(stock.limited, stock.winners.has(userId), stock.winners.size, now)
    if (refusal === 'SOLD_OUT' && stock.draw?.entrants.has(userId))
      return { won: false, refusal: 'NOT_DRAWN' }
    if (refusal) return { won: false, refusal }
    const rank = stock.holes.length > 0 ? (stock.holes.shift() as number) : stock.winners.size + 1
    const win: Win = { couponId, userId, rank, issuedAt: now, requestId }
    stock.winners.set(userId, win)
    return withCode(stock, win)
  }

  /** A request before the draw has run: an entry, one per user. */
  async #enter(stock: CouponStock, userId: string, now: number): Promise<IssueOutcome> {
    const refusal = windowRefusal(stock.rules, now)
    if (refusal) return { won: false, refusal }
    const draw = stock.draw as DrawStock
    if (draw.state !== 'open' || now >= draw.at) return { won: false, refusal: 'DRAWING' }
    let pseudonym = draw.entrants.get(userId)
    if (pseudonym === undefined) {
      const couponId = stock.rules.couponId
      const seed = this.#seeds?.peek(couponId) ?? (await this.#seeds?.get(couponId))
      if (!seed) throw new Error(`coupon ${couponId} has a drawAt but no seed`)
      pseudonym = pseudonymOf(seed, userId)
      // The seed may have been awaited: the draw may have closed meanwhile.
      if (stock.draw !== draw || draw.state !== 'open') return { won: false, refusal: 'DRAWING' }
      draw.entrants.set(userId, pseudonym)
      draw.unwritten.add(userId)
    }
    return { won: false, refusal: 'ENTERED', drawAt: draw.at, pseudonym }
  }

  /** An entry is written: the user is an entrant, whatever a failed write of it did before. */
  entryWritten(couponId: number, userId: string, pseudonym: string): void {
    const draw = this.#coupons.get(couponId)?.draw
    if (!draw) return
    draw.unwritten.delete(userId)
    if (!draw.entrants.has(userId)) draw.entrants.set(userId, pseudonym)
  }

  /** An entry's write failed: a user entered by it, and not written since, is not an entrant. */
  entryFailed(couponId: number, userId: string): void {
    const draw = this.#coupons.get(couponId)?.draw
    if (draw?.unwritten.delete(userId)) draw.entrants.delete(userId)
  }

  /** The coupons this gate holds whose draw is due and not yet entered. */
  dueDraws(now: number): number[] {
    const due: number[] = []
    for (const [couponId, stock] of this.#coupons)
      if (stock.draw && stock.draw.state !== 'drawn' && stock.draw.at <= now) due.push(couponId)
    return due
  }

  /** The earliest drawAt of the draws this gate holds that have not been entered; null: none. */
  nextDrawAt(): number | null {
    let next: number | null = null
    for (const stock of this.#coupons.values())
      if (stock.draw && stock.draw.state !== 'drawn' && (next === null || stock.draw.at < next))
        next = stock.draw.at
    return next
  }

  async entry(couponId: number, userId: string): Promise<EntryState | null> {
    const draw = this.#coupons.get(couponId)?.draw
    if (!draw?.entrants.has(userId)) return null
    return { drawAt: draw.at, drawn: draw.state === 'drawn' }
  }

  async entrantCount(couponId: number): Promise<number> {
    return this.#coupons.get(couponId)?.draw?.entrants.size ?? 0
  }

  async closeEntries(couponId: number): Promise<void> {
    const draw = this.#coupons.get(couponId)?.draw
    if (draw?.state === 'open') draw.state = 'closed'
  }

  async enterWinners(couponId: number, winners: readonly Win[]): Promise<void> {
    const stock = this.#coupons.get(couponId)
    if (!stock?.draw || stock.draw.state === 'drawn') return
    for (const w of winners) if (!stock.winners.has(w.userId)) stock.winners.set(w.userId, w)
    stock.draw.state = 'drawn'
  }

  /** The entrants the gate holds, pseudonym and user (embedded: the draw's check). */
  entrants(couponId: number): { pseudonym: string; userId: string }[] {
    const draw = this.#coupons.get(couponId)?.draw
    return draw ? [...draw.entrants].map(([userId, pseudonym]) => ({ pseudonym, userId })) : []
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

/** The win, with code number rank when the coupon holds it. */
function withCode(stock: CouponStock, win: Win): IssueOutcome {
  const code = stock.codes[win.rank - 1]
  return code === undefined ? { won: true, win } : { won: true, win, code }
}
