/**
 * What a gate rebuilt from the system of record needs: the coupon's rules and its
 * persisted wins, read while the coupon is locked against the stream worker (see
 * `lockCoupons`), so no batch of wins lands between the read and the rebuild.
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
}

export interface GateSource {
  withCouponLocked<T>(couponId: number, use: (snapshot: CouponSnapshot) => Promise<T>): Promise<T>
}
