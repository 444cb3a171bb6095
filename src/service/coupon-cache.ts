/**
 * The local coupon cache of Redis mode (the original's "cache-based validation").
 * It answers without Redis only what is certain from the coupon's current rules:
 * unknown coupon, window not started or ended, sold out. Everything else goes to
 * the gate, whose Lua script checks the window and quantity again, atomically.
 *
 * Entries are dropped on every node when an admin changes the coupon (pub/sub), and
 * expire after `ttlMs` anyway, so a lost notice costs at most that long.
 *
 * The window is the gate's to judge, by the gate's clock (Redis TIME), not this
 * process's: with `gateTime` the cache refuses "not started" or "ended" only when
 * every gate clock, as this process knows it within its measured error
 * (GateClock), is outside the window by more than EDGE_GUARD_MS; nearer the edges,
 * and before any gate clock is known, the gate decides. So a process whose own
 * clock is wrong refuses neither early nor late.
 */
import { countCodes } from '../db/codes-repo.js'
import { findCoupon } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import {
  type CouponRules,
  limitedRules,
  type Refusal,
  rulesOf,
  windowRefusal,
} from '../domain/coupon.js'
import type { GateTime } from '../gate/gate-clock.js'
import type { KnownCoupons } from './known-coupons.js'

/** Nearer than this to an edge of the window (beyond the clock's error), the gate decides. */
export const EDGE_GUARD_MS = 10

interface Entry {
  rules: CouponRules | null
  soldOut: boolean
  expiresAt: number
}

export interface CouponCacheOptions {
  ttlMs?: number
  maxEntries?: number
  /**
   * the clock that judges the window (the gate's, GateClock.time); null: not
   * known yet. Without it, the `now` of each check judges (embedded, tests).
   */
  gateTime?: () => GateTime | null
}

/**
 * The cache's loader: a coupon's rules with the limit that applies (the codes',
 * while fewer), so new codes forget a SOLD_OUT; null for an id that does not exist.
 */
export function limitedRulesOf(
  db: Db,
  known: KnownCoupons,
): (couponId: number) => Promise<CouponRules | null> {
  return async (id) => {
    const coupon = await known.find(id, (i) => findCoupon(db, i))
    return coupon ? limitedRules(rulesOf(coupon), await countCodes(db, id)) : null
  }
}

export class CouponCache {
  readonly #load: (couponId: number) => Promise<CouponRules | null>
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #gateTime: (() => GateTime | null) | undefined
  readonly #entries = new Map<number, Entry>()
  readonly #loading = new Map<number, Promise<Entry>>()

  constructor(
    load: (couponId: number) => Promise<CouponRules | null>,
    options: CouponCacheOptions = {},
  ) {
    this.#load = load
    this.#ttlMs = options.ttlMs ?? 2000
    this.#maxEntries = options.maxEntries ?? 10_000
    this.#gateTime = options.gateTime
  }

  /**
   * A refusal that is certain from the cached rules, or null when the gate must
   * decide. Synchronous when the coupon is cached.
   */
  check(couponId: number, now: number): Refusal | null | Promise<Refusal | null> {
    const entry = this.#entries.get(couponId)
    if (!entry) return this.#fetch(couponId, now).then((e) => this.#refusalOf(e, now))
    if (entry.expiresAt <= now) {
      // Expired: answer from this copy and refresh it in the background, once per
      // TTL. The rules change only through the database, and every change drops
      // the entry on every node, so the copy is still right unless a notice was
      // lost (the TTL bounds that). The issue path must not wait for, or fail with,
      // the database while the gate can decide: a storm keeps being served through
      // a database outage, and the worker persists the wins once it is back.
      entry.expiresAt = now + this.#ttlMs
      this.#fetch(couponId, now).catch(() => {})
    }
    return this.#refusalOf(entry, now)
  }

  #refusalOf(entry: Entry, now: number): Refusal | null {
    if (!entry.rules) return 'COUPON_NOT_FOUND'
    const window = this.#gateTime
      ? certainWindowRefusal(entry.rules, this.#gateTime())
      : windowRefusal(entry.rules, now)
    // A draw coupon's entrant not drawn is told NOT_DRAWN, which only the gate knows.
    const soldOut = entry.soldOut && entry.rules.drawAt == null
    return window ?? (soldOut ? 'SOLD_OUT' : null)
  }

  /** The gate said SOLD_OUT: certain until the quantity is raised (which invalidates). */
  markSoldOut(couponId: number): void {
    const entry = this.#entries.get(couponId)
    if (entry) entry.soldOut = true
  }

  /** Forgets the coupon; a load already in flight is not stored either. */
  invalidate(couponId: number): void {
    this.#entries.delete(couponId)
    this.#loading.delete(couponId)
  }

  clear(): void {
    this.#entries.clear()
    this.#loading.clear()
  }

  #fetch(couponId: number, now: number): Promise<Entry> {
    const inFlight = this.#loading.get(couponId)
    if (inFlight) return inFlight
    const loading: Promise<Entry> = this.#load(couponId).then((rules) => {
      const entry = {
        rules,
        soldOut: stillSoldOut(this.#entries.get(couponId), rules),
        expiresAt: now + this.#ttlMs,
      }
      if (this.#loading.get(couponId) === loading) {
        this.#loading.delete(couponId)
        if (this.#entries.size >= this.#maxEntries) this.#entries.clear()
        this.#entries.set(couponId, entry)
      }
      return entry
    })
    loading.catch(() => {
      if (this.#loading.get(couponId) === loading) this.#loading.delete(couponId)
    })
    this.#loading.set(couponId, loading)
    return loading
  }
}

/**
 * A refresh keeps what the gate said about the quantity it refreshes: SOLD_OUT
 * stays certain while the quantity is the same (raising it invalidates the entry
 * on every node, and a refresh that finds it raised forgets SOLD_OUT), so a sold-out
 * coupon does not send a burst of requests to the gate once per TTL.
 */
function stillSoldOut(prior: Entry | undefined, rules: CouponRules | null): boolean {
  return (
    prior?.soldOut === true &&
    rules !== null &&
    prior.rules !== null &&
    prior.rules.totalQuantity === rules.totalQuantity
  )
}

/** A window refusal every gate clock agrees on, beyond EDGE_GUARD_MS; else null (the gate decides). */
function certainWindowRefusal(rules: CouponRules, time: GateTime | null): Refusal | null {
  if (!time) return null
  if (time.latest + EDGE_GUARD_MS < rules.issueStart) return 'ISSUE_NOT_STARTED'
  if (time.earliest - EDGE_GUARD_MS >= rules.issueEnd) return 'ISSUE_ENDED'
  return null
}
