/**
 * The user's coupon box (내 쿠폰함): every coupon the user won, newest first —
 * the persisted ones from the database, and in Redis mode the wins still QUEUED
 * (answered, not yet written by the worker), which only the gate knows.
 *
 * Finding the QUEUED ones costs one gate look-up per coupon that may hold one:
 * a coupon that has started and still has fewer rows than its quantity (when all
 * its coupons are rows, none is queued), newest first, at most
 * MAX_QUEUED_LOOKUPS of them. In Redis mode the look-ups are `peek.lua` calls
 * sent together (auto-pipelined: one round trip), read-only, and never load a
 * coupon the gate has lost (that state is gone, and loading it is the issue
 * path's job). So a request costs two queries and one round trip to
 * Redis, however many coupons there are, and one query more per QUEUED win (its
 * partner code; a user has few of those at once).
 */
import { findCode } from '../db/codes-repo.js'
import type { Db } from '../db/database.js'
import { couponsWithRoomForQueued, listUserIssues } from '../db/spends-repo.js'
import type { StockGate } from '../gate/stock-gate.js'
import { type IssueState, isUsed } from './issue-service.js'

/** Coupons looked up in the gate per request, at most. */
export const MAX_QUEUED_LOOKUPS = 100

export interface BoxItem {
  couponId: number
  title: string
  discountAmount: number
  minAvailableAmount: number
  rank: number
  state: IssueState
  issuedAt: Date
  usedAt: Date | null
  orderId: string | null
  /** its partner code, code number rank (null: none); the box's callers may see it */
  code: string | null
}

export interface CouponBoxDeps {
  db: Db
  gate: StockGate
  now?: () => number
}

export class CouponBox {
  readonly #db: Db
  readonly #gate: StockGate
  readonly #now: () => number

  constructor(deps: CouponBoxDeps) {
    this.#db = deps.db
    this.#gate = deps.gate
    this.#now = deps.now ?? Date.now
  }

  async list(userId: string): Promise<BoxItem[]> {
    // The gate first, the rows second: a win persisted in between is then a row
    // (which wins below), never missing from both.
    const queued = await this.#queued(userId)
    const rows = await listUserIssues(this.#db, userId)
    const items = new Map<number, BoxItem>()
    for (const q of queued) items.set(q.couponId, q)
    for (const r of rows) {
      items.set(r.couponId, { ...r, state: isUsed(r) ? 'USED' : 'ISSUED' })
    }
    return [...items.values()].sort(
      (a, b) => b.issuedAt.getTime() - a.issuedAt.getTime() || b.couponId - a.couponId,
    )
  }

  async #queued(userId: string): Promise<BoxItem[]> {
    const coupons = await couponsWithRoomForQueued(
      this.#db,
      new Date(this.#now()),
      MAX_QUEUED_LOOKUPS,
    )
    const wins = await Promise.all(coupons.map((c) => this.#gate.lookupLoaded(c.couponId, userId)))
    const items: BoxItem[] = []
    coupons.forEach((c, i) => {
      const win = wins[i]
      if (!win || win === 'NOT_LOADED') return
      items.push({
        code: null,
        ...c,
        rank: win.rank,
        state: 'QUEUED',
        issuedAt: new Date(win.issuedAt),
        usedAt: null,
        orderId: null,
      })
    })
    await Promise.all(
      items.map(async (item) => {
        item.code = await findCode(this.#db, item.couponId, item.rank)
      }),
    )
    return items
  }
}
