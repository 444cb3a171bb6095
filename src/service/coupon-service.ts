/**
 * Coupon administration and reads. The database is the system of record; the gate
 * holds a copy of each coupon's rules, and every change reaches it (and, through
 * CouponEvents, every node's cache) before the call returns.
 */

import { findCoupon, insertCoupon, listCoupons, updateCoupon } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import {
  type Coupon,
  type CouponDraft,
  draftProblem,
  remainingQuantity,
  rulesOf,
} from '../domain/coupon.js'
import { AppError, UnavailableError } from '../domain/errors.js'
import type { CouponEvents } from '../events/coupon-events.js'
import type { StockGate } from '../gate/stock-gate.js'

export type CouponPatch = Partial<CouponDraft>

export interface CouponView extends Coupon {
  remainingQuantity: number | null
}

export class CouponService {
  readonly #db: Db
  readonly #gate: StockGate
  readonly #events: CouponEvents
  /** the public read of a coupon (a pool apart from the admin's, unknown ids answered from memory) */
  readonly #readCoupon: (id: number) => Promise<Coupon | null>
  /** PATCHes of one coupon run one after another, so gate and row end up alike. */
  readonly #patching = new Map<number, Promise<unknown>>()

  constructor(
    db: Db,
    gate: StockGate,
    events: CouponEvents,
    readCoupon: (id: number) => Promise<Coupon | null> = (id) => findCoupon(db, id),
  ) {
    this.#db = db
    this.#gate = gate
    this.#events = events
    this.#readCoupon = readCoupon
  }

  async create(draft: CouponDraft): Promise<Coupon> {
    const problem = draftProblem(draft)
    if (problem) throw new AppError('VALIDATION_FAILED', problem)
    const coupon = await insertCoupon(this.#db, draft, new Date())
    // The row is the record. A gate that cannot be told now (Redis down) loads the
    // coupon from the database on its first issue, so the create still succeeds and
    // a retrying admin does not create it twice.
    await this.#gate.register(rulesOf(coupon)).catch(() => {})
    await this.#events.publish(coupon.id).catch(() => {})
    return coupon
  }

  patch(id: number, patch: CouponPatch): Promise<Coupon> {
    const previous = this.#patching.get(id) ?? Promise.resolve()
    const next = previous.catch(() => {}).then(() => this.#patch(id, patch))
    this.#patching.set(id, next)
    next
      .finally(() => {
        if (this.#patching.get(id) === next) this.#patching.delete(id)
      })
      .catch(() => {})
    return next
  }

  async #patch(id: number, patch: CouponPatch): Promise<Coupon> {
    const current = await this.#require(id)
    const draft: CouponDraft = {
      title: patch.title ?? current.title,
      totalQuantity:
        patch.totalQuantity === undefined ? current.totalQuantity : patch.totalQuantity,
      discountAmount: patch.discountAmount ?? current.discountAmount,
      minAvailableAmount: patch.minAvailableAmount ?? current.minAvailableAmount,
      issueStart: patch.issueStart ?? current.issueStart,
      issueEnd: patch.issueEnd ?? current.issueEnd,
    }
    const problem = draftProblem(draft)
    if (problem) throw new AppError('VALIDATION_FAILED', problem)
    const now = new Date()
    const next: Coupon = { ...current, ...draft, updatedAt: now }
    // The gate checks "not below what is won" and applies the rules atomically.
    const result = await this.#gate.configure(rulesOf(next))
    if (result === 'QUANTITY_BELOW_ISSUED') {
      throw new AppError(
        'QUANTITY_BELOW_ISSUED',
        `totalQuantity ${draft.totalQuantity} is below the number of coupons already won`,
      )
    }
    try {
      await updateCoupon(this.#db, id, draft, now)
    } catch (err) {
      await this.#gate.configure(rulesOf(current)).catch(() => {})
      throw new UnavailableError('database', err)
    }
    await this.#events.publish(id)
    return next
  }

  async list(): Promise<Coupon[]> {
    return listCoupons(this.#db)
  }

  async get(id: number): Promise<CouponView> {
    const coupon = await this.#readCoupon(id)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${id} does not exist`)
    const won = await this.#gate.won(id)
    return { ...coupon, remainingQuantity: remainingQuantity(rulesOf(coupon), won) }
  }

  async #require(id: number): Promise<Coupon> {
    const coupon = await findCoupon(this.#db, id)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${id} does not exist`)
    return coupon
  }
}
