/**
 * The issue path, from a validated request to an outcome:
 *   local cache (certain refusals only) → gate (atomic decision, records the win)
 *   → recorder (embedded: durable before the answer) → outcome.
 * Refusals are returned as values; only infrastructure failures throw.
 */

import { countCodes, findCode } from '../db/codes-repo.js'
import { findCoupon } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { findIssue, type IssueRow } from '../db/issues-repo.js'
import {
  type Coupon,
  type IssueOutcome,
  limitOf,
  REFUSALS,
  type Refusal,
  remainingQuantity,
  type Win,
} from '../domain/coupon.js'
import { AppError, UnavailableError } from '../domain/errors.js'
import { newRequestId } from '../domain/request-id.js'
import type { EntryState, StockGate } from '../gate/stock-gate.js'
import type { WinRecorder } from '../queue/win-recorder.js'
import type { CouponCache } from './coupon-cache.js'
import type { EntryRecorder } from './entry-recorder.js'

export type IssueState = 'QUEUED' | 'ISSUED' | 'USED'

export interface IssueStatus {
  couponId: number
  userId: string
  rank: number
  state: IssueState
  issuedAt: Date
  usedAt: Date | null
  /** the order it was spent on; null while unused */
  orderId: string | null
  /** its partner code (null: none), only when asked for by a caller who may see it */
  code?: string | null
}

/**
 * Is a persisted coupon spent? An order id, or a date of use alone (a row used
 * before order ids existed, imported from the original's schema).
 */
export function isUsed(row: Pick<IssueRow, 'usedAt' | 'orderId'>): boolean {
  return row.orderId !== null || row.usedAt !== null
}

/** A persisted coupon as the user sees it: ISSUED, or USED once spent. */
export function issuedStatus(row: IssueRow): IssueStatus {
  return { ...row, state: isUsed(row) ? 'USED' : 'ISSUED' }
}

/** A win the gate accepted that is not yet a row. */
export function queuedStatus(win: Win): IssueStatus {
  return {
    couponId: win.couponId,
    userId: win.userId,
    rank: win.rank,
    state: 'QUEUED',
    issuedAt: new Date(win.issuedAt),
    usedAt: null,
    orderId: null,
  }
}

export interface CouponStats {
  couponId: number
  totalQuantity: number | null
  /** partner codes the coupon holds */
  codes: number
  /** the quantity that applies (the codes', while fewer than totalQuantity); null: unlimited */
  limit: number | null
  won: number
  persisted: number
  queued: number
  remaining: number | null
}

export interface IssueServiceDeps {
  db: Db
  gate: StockGate
  /** null when the gate's own step makes a win durable (Redis: the stream) */
  recorder: WinRecorder | null
  /** null in embedded mode, where the gate is in-process and as fast as a cache */
  cache: CouponCache | null
  /** embedded mode: writes a draw's entry before it is answered (Redis: the gate's step) */
  entries?: EntryRecorder | null
  /** the coupon, for status and stats (default: a query of `db`) */
  findCoupon?: (couponId: number) => Promise<Coupon | null>
  onOutcome?: (couponId: number, outcome: IssueOutcome) => void
  now?: () => number
}

export class IssueService {
  readonly #db: Db
  readonly #gate: StockGate
  readonly #recorder: WinRecorder | null
  readonly #cache: CouponCache | null
  readonly #entries: EntryRecorder | null
  readonly #findCoupon: (couponId: number) => Promise<Coupon | null>
  readonly #onOutcome: (couponId: number, outcome: IssueOutcome) => void
  readonly #now: () => number

  constructor(deps: IssueServiceDeps) {
    this.#db = deps.db
    this.#gate = deps.gate
    this.#recorder = deps.recorder
    this.#cache = deps.cache
    this.#entries = deps.entries ?? null
    this.#findCoupon = deps.findCoupon ?? ((id) => findCoupon(deps.db, id))
    this.#onOutcome = deps.onOutcome ?? (() => {})
    this.#now = deps.now ?? Date.now
  }

  /**
   * The outcome, given at once (not a promise) when the local cache is certain of
   * a refusal: a caller that can answer in the same turn does, which is most of a
   * storm for a sold-out coupon. Everything else goes to the gate, in call order.
   *
   * Every request reaches the gate with an id, stored with its win: the client's
   * `idempotencyKey`, or one of its own. The same request decided twice (a call
   * sent again after a reconnect, a client's retry with the same key) gets the
   * same win, not ALREADY_ISSUED. A request with a key is refused from the cache
   * only for an unknown coupon: sold out or closed, the gate may still hold its
   * win. In embedded mode a win asked for again is recorded again (idempotently),
   * so its 201 still waits for a commit that holds it.
   */
  issue(
    couponId: number,
    userId: string,
    idempotencyKey?: string,
  ): IssueOutcome | Promise<IssueOutcome> {
    const now = this.#now()
    if (this.#cache) {
      const certain = this.#cache.check(couponId, now)
      if (certain instanceof Promise)
        return certain.then((refusal) =>
          refusal && (idempotencyKey === undefined || refusal === 'COUPON_NOT_FOUND')
            ? this.#outcome(couponId, refused[refusal])
            : this.#decide(couponId, userId, now, idempotencyKey),
        )
      if (certain && (idempotencyKey === undefined || certain === 'COUPON_NOT_FOUND'))
        return this.#outcome(couponId, refused[certain])
    }
    return this.#decide(couponId, userId, now, idempotencyKey)
  }

  async #decide(
    couponId: number,
    userId: string,
    now: number,
    idempotencyKey: string | undefined,
  ): Promise<IssueOutcome> {
    const requestId = idempotencyKey ?? newRequestId()
    const outcome = await this.#gate.tryIssue(couponId, userId, now, requestId)
    if (outcome.won) {
      if (this.#recorder) await this.#recorder.record(outcome.win)
    } else if (outcome.refusal === 'SOLD_OUT') {
      this.#cache?.markSoldOut(couponId)
    } else if (outcome.refusal === 'ENTERED' && this.#entries && outcome.pseudonym) {
      await this.#entries.record(couponId, userId, outcome.pseudonym).catch((err: unknown) => {
        throw err instanceof UnavailableError ? err : new UnavailableError('database', err)
      })
    }
    return this.#outcome(couponId, outcome)
  }

  #outcome(couponId: number, outcome: IssueOutcome): IssueOutcome {
    this.#onOutcome(couponId, outcome)
    return outcome
  }

  /**
   * The user's coupon: QUEUED (won, not yet a row), ISSUED or USED; null if not
   * won. `withCode`: with its partner code, code number rank (for the callers
   * who may spend it; one more query).
   */
  async status(couponId: number, userId: string, withCode = false): Promise<IssueStatus | null> {
    await this.#requireCoupon(couponId)
    // DB ⊆ gate: a user the gate does not know has no row either, so most
    // look-ups (non-winners) never touch the database.
    const win = await this.#gate.lookup(couponId, userId)
    if (!win) return null
    const row = await findIssue(this.#db, couponId, userId)
    const status = row ? issuedStatus(row) : queuedStatus(win)
    if (withCode) status.code = await findCode(this.#db, couponId, status.rank)
    return status
  }

  /**
   * The user's entry in the coupon's draw, for a user with no win: null when
   * not entered (or no draw). Throws NOT_DRAWN once the draw has run.
   */
  async entry(couponId: number, userId: string): Promise<EntryState | null> {
    const entry = await this.#gate.entry(couponId, userId)
    if (entry?.drawn)
      throw new AppError(
        'NOT_DRAWN',
        `user ${userId} entered the draw of coupon ${couponId} and was not drawn`,
      )
    return entry
  }

  async stats(couponId: number): Promise<CouponStats> {
    const coupon = await this.#requireCoupon(couponId)
    const [won, codes] = await Promise.all([
      this.#gate.won(couponId),
      countCodes(this.#db, couponId),
    ])
    const persisted = coupon.issuedQuantity
    const limit = limitOf(coupon.totalQuantity, codes)
    return {
      couponId,
      totalQuantity: coupon.totalQuantity,
      codes,
      limit,
      won,
      persisted,
      queued: Math.max(0, won - persisted),
      remaining: remainingQuantity({ totalQuantity: limit }, won),
    }
  }

  async #requireCoupon(couponId: number) {
    const coupon = await this.#findCoupon(couponId)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
    return coupon
  }
}

/** The refusals as outcomes, made once: most answers of a storm are one of them. */
const refused = Object.fromEntries(
  REFUSALS.map((refusal) => [refusal, Object.freeze({ won: false, refusal })]),
) as Record<Refusal, IssueOutcome>
