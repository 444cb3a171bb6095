/**
 * Redis key names. Every key of one coupon carries the hash tag `{c<id>}`, so the
 * Lua scripts, which touch several of them, run unchanged on Redis Cluster (all
 * in one slot). The prefix lets several deployments (or tests) share a server.
 */
export interface CouponKeys {
  meta: string
  users: string
  holes: string
  stream: string
  dead: string
  lock: string
  /** volatile: this server's stamp checked lately (stamp.lua) */
  live: string
  stagingUsers: string
  stagingHoles: string
  /** the opening draw: hash at (epoch ms), state (open | closed | drawn) */
  draw: string
  /** the draw's entrants: zset, every score 0, member pseudonym ‖ userId (lex order = pseudonym order) */
  entries: string
  /** the draw's lease: one process runs the draw */
  drawLease: string
  /** partner codes: a hash of number r → code r, numbered 1..n */
  codes: string
  stagingCodes: string
}

const MAX_CACHED_COUPONS = 10_000

export class RedisKeys {
  readonly prefix: string
  /** coupon ids whose streams the workers poll */
  readonly streams: string
  /** pub/sub channel: "coupon <id> changed" */
  readonly couponChanged: string

  /** the names of recently used coupons, built once (the issue path asks on every request) */
  readonly #coupons = new Map<number, Readonly<CouponKeys>>()

  constructor(prefix: string) {
    this.prefix = prefix
    this.streams = `${prefix}streams`
    this.couponChanged = `${prefix}coupon-changed`
  }

  coupon(couponId: number): Readonly<CouponKeys> {
    let keys = this.#coupons.get(couponId)
    if (!keys) {
      if (this.#coupons.size >= MAX_CACHED_COUPONS) this.#coupons.clear()
      keys = Object.freeze(this.#build(couponId))
      this.#coupons.set(couponId, keys)
    }
    return keys
  }

  #build(couponId: number): CouponKeys {
    const base = `${this.prefix}{c${couponId}}:`
    return {
      meta: `${base}meta`,
      users: `${base}users`,
      holes: `${base}holes`,
      stream: `${base}stream`,
      dead: `${base}dead`,
      lock: `${base}lock`,
      live: `${base}live`,
      stagingUsers: `${base}staging:users`,
      stagingHoles: `${base}staging:holes`,
      draw: `${base}draw`,
      entries: `${base}entries`,
      drawLease: `${base}draw:lease`,
      codes: `${base}codes`,
      stagingCodes: `${base}staging:codes`,
    }
  }
}

/** The consumer group of the persistence workers on every coupon stream. */
export const PERSIST_GROUP = 'persist'

/** issue.lua's keys, in its order. */
export function issueKeys(k: CouponKeys): string[] {
  return [k.meta, k.users, k.holes, k.stream, k.live, k.codes, k.draw]
}
