/**
 * The business events of a coupon's window, logged as one JSON line each:
 * `coupon.window_opened`, `coupon.sold_out` (with how long it took from the
 * window's start) and `coupon.window_closed` (with the count won).
 *
 * Each API process keeps a timer per current coupon, set from its rules (loaded
 * at start, and again on every change notice), so nothing is polled while no
 * window is open; while one is, the gate's count is read every SOLD_OUT_POLL_MS
 * to notice the sell-out. With several processes each would log the same event:
 * `claim` (Redis SET NX in Redis mode) lets the first one log it and the others
 * stay quiet. An event whose moment passed while no process ran is logged at
 * the next start only if it is under GRACE_MS old: a restart must not replay a
 * day of events.
 */
import type { Logger } from 'pino'
import type { Coupon } from '../domain/coupon.js'
import type { RedisClient } from '../redis/connection.js'

const SOLD_OUT_POLL_MS = 250
const GRACE_MS = 5000
/** the coupons read again this often, in case a change notice was lost */
const RESYNC_MS = 5000
/** setTimeout takes at most 2^31-1 ms; a later moment is re-armed on the way. */
const MAX_DELAY_MS = 86_400_000
/** how long a logged event's claim is kept in Redis */
const CLAIM_TTL_MS = 7 * 86_400_000

/** One process: each event is logged once by remembering it here. */
export function claimedOnce(): (key: string) => Promise<boolean> {
  const seen = new Set<string>()
  return async (key) => {
    if (seen.has(key)) return false
    if (seen.size >= 100_000) seen.clear()
    seen.add(key)
    return true
  }
}

/** Every process of a deployment: the first to SET NX the event's key logs it. */
export function redisClaims(
  client: RedisClient,
  prefix: string,
): (key: string) => Promise<boolean> {
  return async (key) =>
    (await client.set(`${prefix}${key}`, '1', 'PX', CLAIM_TTL_MS, 'NX')) === 'OK'
}

export interface CouponWatchOptions {
  coupons: () => Promise<Coupon[]>
  coupon: (id: number) => Promise<Coupon | null>
  won: (id: number) => Promise<number>
  /** change notices: a coupon's id, or null for "any may have changed" */
  subscribe: (listener: (id: number | null) => void) => void
  /** true for the one process that logs the event named by `key` */
  claim: (key: string) => Promise<boolean>
  logger: Logger
}

interface Watched {
  coupon: Coupon
  timer: NodeJS.Timeout | null
  soldOutLogged: boolean
}

export class CouponWatch {
  readonly #o: CouponWatchOptions
  readonly #watched = new Map<number, Watched>()
  #resync: NodeJS.Timeout | null = null
  #stopped = false

  constructor(options: CouponWatchOptions) {
    this.#o = options
  }

  /** Only API processes watch: a worker process has no windows to announce. */
  async start(): Promise<void> {
    this.#o.subscribe((id) => this.changed(id))
    for (const coupon of await this.#o.coupons()) this.#watch(coupon, Date.now() - GRACE_MS)
    this.#resync = setInterval(() => this.changed(null), RESYNC_MS)
    this.#resync.unref()
  }

  /** A change notice: the coupon's rules again (null: any coupon may have changed). */
  changed(id: number | null): void {
    if (this.#stopped) return
    if (id === null) {
      this.#o.coupons().then(
        (all) => {
          for (const c of all) this.#watch(c, Date.now() - GRACE_MS)
        },
        () => {},
      )
      return
    }
    this.#o.coupon(id).then(
      (c) => c && this.#watch(c, Date.now() - GRACE_MS),
      () => {},
    )
  }

  stop(): void {
    this.#stopped = true
    if (this.#resync) clearInterval(this.#resync)
    for (const w of this.#watched.values()) if (w.timer) clearTimeout(w.timer)
    this.#watched.clear()
  }

  /** (Re)arms the coupon's timer; moments since `since` that already passed are due now. */
  #watch(coupon: Coupon, since: number) {
    if (this.#stopped) return
    const previous = this.#watched.get(coupon.id)
    if (previous && sameRules(previous.coupon, coupon)) return
    if (previous?.timer) clearTimeout(previous.timer)
    const sameQuantity = previous?.coupon.totalQuantity === coupon.totalQuantity
    const w: Watched = {
      coupon,
      timer: null,
      soldOutLogged: !!previous?.soldOutLogged && sameQuantity,
    }
    this.#watched.set(coupon.id, w)
    this.#tick(w, since)
  }

  #tick(w: Watched, since: number) {
    if (this.#stopped || this.#watched.get(w.coupon.id) !== w) return
    const now = Date.now()
    const start = w.coupon.issueStart.getTime()
    const end = w.coupon.issueEnd.getTime()
    if (start <= now && start >= since) this.#log(w, 'window_opened', start)
    if (end <= now && end >= since) {
      this.#closed(w)
      return
    }
    if (end <= now) return
    let next: number
    if (now < start) next = start - now
    else {
      this.#checkSoldOut(w)
      next = w.coupon.totalQuantity === null || w.soldOutLogged ? end - now : SOLD_OUT_POLL_MS
      next = Math.min(next, end - now)
    }
    w.timer = setTimeout(() => this.#tick(w, now), Math.min(next, MAX_DELAY_MS))
    w.timer.unref()
  }

  #checkSoldOut(w: Watched) {
    const total = w.coupon.totalQuantity
    if (total === null || w.soldOutLogged) return
    this.#o.won(w.coupon.id).then(
      (won) => {
        if (won < total || w.soldOutLogged) return
        w.soldOutLogged = true
        const sellOutMs = Date.now() - w.coupon.issueStart.getTime()
        this.#log(w, 'sold_out', `${w.coupon.issueStart.getTime()}:${total}`, {
          won,
          sellOutMs,
        })
      },
      () => {},
    )
  }

  #closed(w: Watched) {
    this.#o.won(w.coupon.id).then(
      (won) => this.#log(w, 'window_closed', w.coupon.issueEnd.getTime(), { won }),
      () => this.#log(w, 'window_closed', w.coupon.issueEnd.getTime()),
    )
  }

  #log(w: Watched, what: string, stamp: number | string, fields: Record<string, unknown> = {}) {
    const c = w.coupon
    this.#o.claim(`${c.id}:${what}:${stamp}`).then(
      (mine) => {
        if (!mine) return
        this.#o.logger.info(
          {
            event: `coupon.${what}`,
            couponId: c.id,
            title: c.title,
            totalQuantity: c.totalQuantity,
            issueStart: c.issueStart.toISOString(),
            issueEnd: c.issueEnd.toISOString(),
            ...fields,
          },
          `coupon ${c.id}: ${what.replace('_', ' ')}`,
        )
      },
      () => {},
    )
  }
}

const sameRules = (a: Coupon, b: Coupon) =>
  a.totalQuantity === b.totalQuantity &&
  a.issueStart.getTime() === b.issueStart.getTime() &&
  a.issueEnd.getTime() === b.issueEnd.getTime() &&
  a.title === b.title
