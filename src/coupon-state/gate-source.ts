/**
 * What a gate rebuilt from the system of record needs: the coupon's rules and its
 * persisted wins. Redis's coupon state reads them while the coupon is locked
 * against the stream worker (see `lockCoupons`), so no batch of wins lands between
 * the read and the rebuild; the in-process gate reads every coupon once, at start.
 */
import type { CouponRules, Win } from '../domain/coupon.js'

export interface CouponSnapshot {
  /** null: no such coupon */
  rules: CouponRules | null
  wins: Win[]
  /** the coupon's opening draw has run (its record is in the database) */
  drawn?: boolean
  /** up to `max` of the coupon's partner codes, from number `fromSeq` on, in number order */
  readCodes(fromSeq: number, max: number): Promise<string[]>
  /** the entrants of its draw, a page at a time (all of them once it is drawn) */
  readEntrants?(): AsyncIterable<readonly { pseudonym: string; userId: string }[]>
}

export interface GateSource {
  withCouponLocked<T>(couponId: number, use: (snapshot: CouponSnapshot) => Promise<T>): Promise<T>
}

/**
 * A coupon as the in-process gate is restored from it at start (one process holds
 * the stock: nothing else writes meanwhile), with its draw's entrants.
 */
export interface StoredCoupon extends CouponSnapshot {
  rules: CouponRules
  /** a draw coupon's entrants, pseudonym order; none for a coupon without a draw */
  entrants: readonly { pseudonym: string; userId: string }[]
}
