/**
 * The CouponEvents port: "coupon N changed", heard by every API node, so a PATCH
 * takes effect for the next request everywhere. Adapters: memory (one process)
 * and Redis pub/sub.
 */
export interface CouponEvents {
  publish(couponId: number): Promise<void>
  /** `couponId` null: notices may have been missed (reconnect); forget everything. */
  subscribe(listener: (couponId: number | null) => void): void
  close(): Promise<void>
}
