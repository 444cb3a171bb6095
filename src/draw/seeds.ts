/**
 * Each draw coupon's seed, read once from the database and kept: a seed never
 * changes once drawn (the commitment shown on the coupon holds it), so a copy
 * is never stale. The gates need it at every entry, to compute the entrant's
 * pseudonym (docs/draw.md, step 2).
 */
import { pseudonymOf } from './shuffle.js'

export class DrawSeeds {
  readonly #load: (couponId: number) => Promise<Buffer | null>
  readonly #seeds = new Map<number, Buffer>()
  readonly #loading = new Map<number, Promise<Buffer | null>>()

  constructor(load: (couponId: number) => Promise<Buffer | null>) {
    this.#load = load
  }

  /** The seed when already known (no wait). */
  peek(couponId: number): Buffer | undefined {
    return this.#seeds.get(couponId)
  }

  async get(couponId: number): Promise<Buffer | null> {
    const known = this.#seeds.get(couponId)
    if (known) return known
    let loading = this.#loading.get(couponId)
    if (!loading) {
      loading = this.#load(couponId).finally(() => this.#loading.delete(couponId))
      this.#loading.set(couponId, loading)
    }
    const seed = await loading
    if (seed) this.#seeds.set(couponId, seed)
    return seed
  }

  /** The user's pseudonym in the coupon's draw; null: the coupon has no seed. */
  async pseudonym(couponId: number, userId: string): Promise<string | null> {
    const seed = this.peek(couponId) ?? (await this.get(couponId))
    return seed ? pseudonymOf(seed, userId) : null
  }
}
