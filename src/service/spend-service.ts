/**
 * After the win: spending a user's coupon on an order (use), and giving it back
 * when the order is cancelled (cancel).
 * - One order per coupon: a conditional UPDATE (markUsed) decides among orders
 *   racing for it, and the row read back says which order holds it.
 * - The same order again is answered as the first time: a checkout may retry.
 * - A win still QUEUED (answered, not yet persisted by the worker or the group
 *   commit) is persisted here first, as the worker persists it
 *   (persistVerifiedWins): in ONE transaction, under the coupon's row lock (the
 *   lock every worker batch and every gate rebuild take), checked against the gate
 *   (DB ⊆ gate: only the gate's own user and rank become a row), inserted
 *   idempotently, counted in issued_quantity by the rows actually inserted, and
 *   marked used. The worker's insert of the same win later
 *   finds the row and counts nothing, so rows, issued_quantity and the stats stay
 *   exact whichever comes first.
 * - The answer leaves after the commit: a spend answered 200 survives kill -9.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { findCoupon } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { findIssue, type IssueRow } from '../db/issues-repo.js'
import { markUsed, unmarkUsed } from '../db/spends-repo.js'
import type { Coupon, Win } from '../domain/coupon.js'
import { AppError, UnavailableError } from '../domain/errors.js'
import type { StockGate } from '../gate/stock-gate.js'
import type { Metrics } from '../ops/metrics.js'
import {
  GateNotLoaded,
  gateVerifier,
  persistVerifiedWins,
  type WinVerifier,
  type WinWriter,
} from '../queue/persist/verified-wins.js'
import { type IssueStatus, issuedStatus, isUsed, queuedStatus } from './issue-service.js'

export interface SpendReceipt {
  couponId: number
  userId: string
  orderId: string
  discountAmount: number
  usedAt: Date
}

export interface SpendServiceDeps {
  db: Db
  gate: StockGate
  /**
   * Redis mode: the worker persists a win only once it is this old (see
   * WORKER_PERSIST_DELAY_MS), so that Redis has it on disk first; a QUEUED spend
   * waits as long before it persists the win itself.
   */
  persistDelayMs?: number
  /** a coupon was spent (not a retry) */
  onSpent?: (couponId: number) => void
  /** the persisted wins' metrics (writer `spend`) */
  metrics?: Metrics | undefined
  now?: () => number
}

export class SpendService {
  readonly #db: Db
  readonly #gate: StockGate
  readonly #persistDelayMs: number
  readonly #onSpent: (couponId: number) => void
  readonly #now: () => number
  readonly #writer: WinWriter
  readonly #verifier: WinVerifier

  constructor(deps: SpendServiceDeps) {
    this.#db = deps.db
    this.#gate = deps.gate
    this.#persistDelayMs = deps.persistDelayMs ?? 0
    this.#onSpent = deps.onSpent ?? (() => {})
    this.#now = deps.now ?? Date.now
    this.#writer = { db: deps.db, writer: 'spend', metrics: deps.metrics }
    this.#verifier = gateVerifier(deps.gate)
  }

  /**
   * Spends the coupon on the order. Refusals, in order: COUPON_NOT_FOUND,
   * NOT_ISSUED, ALREADY_USED (another order holds it), ORDER_BELOW_MINIMUM.
   */
  async use(
    couponId: number,
    userId: string,
    orderId: string,
    orderAmount: number,
  ): Promise<SpendReceipt> {
    const coupon = await this.#requireCoupon(couponId)
    const row = await findIssue(this.#db, couponId, userId)
    if (row?.orderId === orderId) return receipt(coupon, row)
    if (row && isUsed(row)) throw alreadyUsed(couponId, userId)
    const win = row ? null : await this.#gate.lookup(couponId, userId)
    if (!row && !win) throw notIssued(couponId, userId)
    if (orderAmount < coupon.minAvailableAmount) {
      throw new AppError(
        'ORDER_BELOW_MINIMUM',
        `The order amount is below the coupon's minimum of ${coupon.minAvailableAmount}.`,
      )
    }
    const now = new Date(this.#now())
    const marked = win
      ? await this.#spendQueued(win, orderId, now)
      : await markUsed(this.#db, couponId, userId, orderId, now)
    const after = await findIssue(this.#db, couponId, userId)
    if (!after) throw notIssued(couponId, userId)
    if (after.orderId !== orderId) throw alreadyUsed(couponId, userId)
    if (marked) this.#onSpent(couponId)
    return receipt(coupon, after)
  }

  /**
   * The order was cancelled: the coupon is the user's to spend again. Answers the
   * user's coupon; nothing to undo (not used, or a QUEUED win) is not an error,
   * another order's coupon is USED_BY_ANOTHER_ORDER and stays as it is.
   */
  async cancel(couponId: number, userId: string, orderId: string): Promise<IssueStatus> {
    await this.#requireCoupon(couponId)
    const row = await findIssue(this.#db, couponId, userId)
    if (!row) {
      const win = await this.#gate.lookup(couponId, userId)
      if (!win) throw notIssued(couponId, userId)
      return queuedStatus(win)
    }
    if (row.orderId !== orderId) {
      if (!isUsed(row)) return issuedStatus(row)
      throw new AppError(
        'USED_BY_ANOTHER_ORDER',
        `The coupon was spent on another order; order ${orderId} cannot give it back.`,
      )
    }
    await unmarkUsed(this.#db, couponId, userId, orderId, new Date(this.#now()))
    return issuedStatus((await findIssue(this.#db, couponId, userId)) ?? row)
  }

  /** See the file's header: the QUEUED win becomes a row, used, in one transaction. */
  async #spendQueued(answered: Win, orderId: string, now: Date): Promise<boolean> {
    const { couponId, userId } = answered
    const wait = answered.issuedAt + this.#persistDelayMs - this.#now()
    if (wait > 0) await sleep(wait)
    let win = answered
    for (let attempt = 0; ; attempt++) {
      try {
        const spent = await persistVerifiedWins(this.#writer, couponId, [{ win }], this.#verifier, {
          now,
          also: async (trx, { unknown }) =>
            unknown.length > 0 ? false : markUsed(trx, couponId, userId, orderId, now),
        })
        // The gate no longer holds the win it answered (lost, then rebuilt): nothing written.
        if (spent.unknown.length > 0) throw notIssued(couponId, userId)
        return spent.also
      } catch (err) {
        if (!(err instanceof GateNotLoaded)) throw err
      }
      // The gate lost the coupon's state: have it loaded, outside the lock, once.
      if (attempt > 0) throw new UnavailableError('redis', new Error('coupon state not loaded'))
      win = (await this.#gate.lookup(couponId, userId)) ?? win
    }
  }

  async #requireCoupon(couponId: number): Promise<Coupon> {
    const coupon = await findCoupon(this.#db, couponId)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
    return coupon
  }
}

/** The answer to a spend, from the row an order holds (markUsed sets both columns). */
function receipt(coupon: Coupon, row: IssueRow): SpendReceipt {
  return {
    couponId: coupon.id,
    userId: row.userId,
    orderId: row.orderId ?? '',
    discountAmount: coupon.discountAmount,
    usedAt: row.usedAt ?? new Date(0),
  }
}

function notIssued(couponId: number, userId: string) {
  return new AppError('NOT_ISSUED', `user ${userId} has not won coupon ${couponId}`)
}

function alreadyUsed(couponId: number, userId: string) {
  return new AppError(
    'ALREADY_USED',
    `user ${userId}'s coupon ${couponId} was already spent on another order.`,
  )
}
