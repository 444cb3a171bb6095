/** CouponEvents within one process. */
import type { CouponEvents } from './coupon-events.js'

export class MemoryCouponEvents implements CouponEvents {
  readonly #listeners: ((couponId: number | null) => void)[] = []

  async publish(couponId: number): Promise<void> {
    for (const listener of this.#listeners) listener(couponId)
  }

  subscribe(listener: (couponId: number | null) => void): void {
    this.#listeners.push(listener)
  }

  async close(): Promise<void> {
    this.#listeners.length = 0
  }
}
