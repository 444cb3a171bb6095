/**
 * Which coupon ids exist, so that a request for an id that does not is answered
 * without a database query of its own: a storm of random ids costs one query per
 * refresh interval, however many ids it names.
 *
 * Coupons are never deleted, so an id once known stays known. An id not known may
 * be a coupon created a moment ago on another node (its notice not yet here): it
 * waits for a refresh that starts after it was asked, so it is found at once, and
 * every id asked meanwhile shares that refresh.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/** How often, at most, a storm of unknown ids makes the service read the ids again. */
export const DEFAULT_REFRESH_MS = 250

export interface KnownCouponsOptions {
  /** refreshes start at least this far apart */
  refreshMs?: number
}

export class KnownCoupons {
  readonly #listIds: () => Promise<number[]>
  readonly #refreshMs: number
  readonly #ids = new Set<number>()
  #lastRefreshAt = Number.NEGATIVE_INFINITY
  /** the next refresh, not started yet: whoever asks now is answered by it */
  #next: Promise<void> | null = null

  constructor(listIds: () => Promise<number[]>, options: KnownCouponsOptions = {}) {
    this.#listIds = listIds
    this.#refreshMs = options.refreshMs ?? DEFAULT_REFRESH_MS
  }

  /** A coupon just created (here, or on another node as its notice says). */
  add(couponId: number): void {
    this.#ids.add(couponId)
  }

  /** Synchronous when the id is known; otherwise after the next refresh. */
  exists(couponId: number): boolean | Promise<boolean> {
    if (this.#ids.has(couponId)) return true
    return this.#refresh().then(() => this.#ids.has(couponId))
  }

  /** `find(id)` for a coupon that exists; null, without calling it, for one that does not. */
  async find<T>(couponId: number, find: (couponId: number) => Promise<T | null>) {
    return (await this.exists(couponId)) ? find(couponId) : null
  }

  #refresh(): Promise<void> {
    if (this.#next) return this.#next
    const wait = Math.max(0, this.#lastRefreshAt + this.#refreshMs - Date.now())
    const next = sleep(wait).then(async () => {
      // From here on, a new asker waits for the refresh after this one: this one
      // may have read the table before that asker's coupon was committed.
      this.#next = null
      this.#lastRefreshAt = Date.now()
      for (const id of await this.#listIds()) this.#ids.add(id)
    })
    this.#next = next
    return next
  }
}
