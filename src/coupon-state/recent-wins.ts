/**
 * The wins this process answered lately, per coupon: what Redis may lose when it
 * loses the tail of its AOF (appendfsync everysec: about a second), or when a
 * replica that had not yet received them takes its place. After a catch-up or a
 * reconnect each is looked up once in the caught-up gate (CouponState's audit):
 * one it no longer holds was answered and will never be a row, and is counted
 * and logged with its user. Kept for RECENT_MS, at most MAX_WINS: a cost of one
 * small object per win, dropped in bulk.
 */

export interface RecentWin {
  couponId: number
  userId: string
  rank: number
  /** when it was answered (epoch ms) */
  at: number
  requestId?: string | undefined
}

/** Longer than any loss window the docs give for AOF everysec or a replica's lag. */
export const RECENT_MS = 5000
const MAX_WINS = 200_000

export class RecentWins {
  readonly #byCoupon = new Map<number, RecentWin[]>()
  #size = 0

  add(win: RecentWin) {
    let list = this.#byCoupon.get(win.couponId)
    if (!list) {
      list = []
      this.#byCoupon.set(win.couponId, list)
    }
    list.push(win)
    // Trimmed in bulk, when the oldest is twice too old or the bound is passed.
    const first = list[0] as RecentWin
    if (++this.#size > MAX_WINS || win.at - first.at > 2 * RECENT_MS) this.#trim(win.at)
  }

  /** The coupons with recent wins. */
  coupons(): number[] {
    return [...this.#byCoupon.keys()]
  }

  /** The coupon's recent wins, no longer kept (each is audited once). */
  take(couponId: number): RecentWin[] {
    const list = this.#byCoupon.get(couponId) ?? []
    this.#byCoupon.delete(couponId)
    this.#size -= list.length
    return list
  }

  #trim(now: number) {
    const oldest = now - RECENT_MS
    for (const [couponId, list] of this.#byCoupon) {
      let from = list.findIndex((w) => w.at >= oldest)
      if (from < 0) from = list.length
      if (this.#size > MAX_WINS) from = Math.max(from, list.length - Math.floor(MAX_WINS / 2))
      if (from === 0) continue
      this.#size -= from
      if (from === list.length) this.#byCoupon.delete(couponId)
      else list.splice(0, from)
    }
  }
}
