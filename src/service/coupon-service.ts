/**
 * Coupon administration and reads. The database is the system of record; the gate
 * holds a copy of each coupon's rules, and every change reaches it (and, through
 * CouponEvents, every node's cache) before the call returns.
 *
 * An admin change is safe whatever fails, and in whatever order:
 *   1. under the coupon's row lock, the gate takes the STRICTEST of the old and
 *      the new rules (later start, earlier end, smaller quantity; refused, with
 *      nothing changed, when the new quantity is below what is won), then the row
 *      is written and committed;
 *   2. then, under the row lock again, the gate takes the rules the database
 *      holds (#applyRecorded).
 * Any win granted in between is valid under both rules, so whichever the database
 * ends up with — the commit failed, succeeded, or is unknown — the gate never let
 * more through than the database's rules allow. A failure anywhere answers 503;
 * step 2 then runs in the background until it succeeds, and until then the gate
 * holds rules at least as strict as the database's (never looser). The row lock
 * is the one a worker batch and a gate rebuild take, so changes from several
 * nodes apply one at a time and step 2 always reads the last committed rules.
 */

import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { countCodes } from '../db/codes-repo.js'
import {
  findCoupon,
  insertCoupon,
  listCoupons,
  lockCoupons,
  updateCoupon,
} from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { deleteEntries, ensureDrawSeed, findDraw } from '../db/draws-repo.js'
import {
  type Coupon,
  type CouponDraft,
  draftProblem,
  limitOf,
  remainingQuantity,
  rulesOf,
  strictestRules,
} from '../domain/coupon.js'
import { AppError, UnavailableError } from '../domain/errors.js'
import type { CouponEvents } from '../events/coupon-events.js'
import type { StockGate } from '../gate/stock-gate.js'

export type CouponPatch = Partial<CouponDraft>

export interface CouponView extends Coupon {
  remainingQuantity: number | null
}

/** The gate lost the coupon's state during a change; loaded again, the change is retried. */
const NOT_LOADED = Symbol('NOT_LOADED')
const CHANGE_ATTEMPTS = 3
const APPLY_RETRY_MS = { min: 200, max: 5000 }
/** how long a change waits for its recorded end to pass on every gate node (their clocks apart) */
const UNTIL_PAST_MAX_MS = 1000

export class CouponService {
  readonly #db: Db
  readonly #gate: StockGate
  readonly #events: CouponEvents
  readonly #logger: Logger | undefined
  /** the public read of a coupon (a pool apart from the admin's, unknown ids answered from memory) */
  readonly #readCoupon: (id: number) => Promise<Coupon | null>
  readonly #now: () => number
  readonly #latest: () => number
  readonly #earliest: () => number
  /** PATCHes of one coupon run one after another, so gate and row end up alike. */
  readonly #patching = new Map<number, Promise<unknown>>()
  /** coupons whose gate must still take the recorded rules, with the retry timer */
  readonly #unapplied = new Map<number, NodeJS.Timeout>()

  constructor(
    db: Db,
    gate: StockGate,
    events: CouponEvents,
    logger?: Logger,
    readCoupon: (id: number) => Promise<Coupon | null> = (id) => findCoupon(db, id),
    /**
     * the gate's clock: `now` for whether a draw is due; `latest` and
     * `earliest`, no gate node's clock is later or earlier than them (an end
     * taken once past is recorded as `latest`, and applied once `earliest` has
     * passed it)
     */
    clock: { now(): number; latest(): number; earliest(): number } = {
      now: Date.now,
      latest: Date.now,
      earliest: Date.now,
    },
  ) {
    this.#now = () => clock.now()
    this.#latest = () => clock.latest()
    this.#earliest = () => clock.earliest()
    this.#db = db
    this.#gate = gate
    this.#events = events
    this.#logger = logger
    this.#readCoupon = readCoupon
  }

  async create(draft: CouponDraft): Promise<Coupon> {
    const problem = draftProblem(draft)
    if (problem) throw new AppError('VALIDATION_FAILED', problem)
    // The gate drops whatever it holds under the new id (left by a database reset
    // while Redis kept its keys) before the row is committed: if it cannot (Redis
    // down), nothing is created and the admin hears 503, rather than a coupon that
    // could inherit a stale gate. A commit that fails after it leaves only fresh
    // state for an id the database does not hold, which no request reaches.
    const coupon = await this.#db
      .transaction()
      .execute(async (trx) => {
        const created = await insertCoupon(trx, draft, new Date())
        if (created.drawAt !== null) created.drawCommitment = await ensureDrawSeed(trx, created.id)
        await this.#gate.register(rulesOf(created))
        return created
      })
      .catch((err: unknown) => {
        throw err instanceof UnavailableError ? err : new UnavailableError('database', err)
      })
    await this.#events.publish(coupon.id).catch(() => {})
    this.#logger?.info(
      { event: 'coupon.created', ...described(coupon) },
      `coupon ${coupon.id} created`,
    )
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
    for (let attempt = 1; ; attempt++) {
      // Loaded before the row lock is taken: a load takes that lock itself.
      await this.#gate.ensureLoaded(id)
      const changed = await this.#change(id, patch)
      if (changed !== NOT_LOADED) return changed
      if (attempt >= CHANGE_ATTEMPTS)
        throw new UnavailableError('redis', new Error(`coupon ${id}: gate state keeps vanishing`))
    }
  }

  /** Step 1 (see the file's header), then step 2; NOT_LOADED: nothing changed. */
  async #change(id: number, patch: CouponPatch): Promise<Coupon | typeof NOT_LOADED> {
    let gateTouched = false
    /** an end recorded as the moment the gate took it (see below) */
    let tookEnd: number | null = null
    let next: Coupon | typeof NOT_LOADED
    try {
      next = await this.#db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [id])
        const current = await this.#require(trx, id)
        const draft: CouponDraft = {
          title: patch.title ?? current.title,
          totalQuantity:
            patch.totalQuantity === undefined ? current.totalQuantity : patch.totalQuantity,
          discountAmount: patch.discountAmount ?? current.discountAmount,
          minAvailableAmount: patch.minAvailableAmount ?? current.minAvailableAmount,
          issueStart: patch.issueStart ?? current.issueStart,
          issueEnd: patch.issueEnd ?? current.issueEnd,
          drawAt: patch.drawAt === undefined ? current.drawAt : patch.drawAt,
        }
        const problem = draftProblem(draft)
        if (problem) throw new AppError('VALIDATION_FAILED', problem)
        let drawCommitment = current.drawCommitment
        if (patch.drawAt !== undefined) await this.#checkDrawChange(trx, current, draft)
        if (
          draft.totalQuantity !== current.totalQuantity &&
          (await this.#drawStage(trx, current)) === 'due'
        )
          throw new AppError(
            'DRAW_DONE',
            `the draw of coupon ${current.id} is running: its quantity is fixed until it is recorded`,
          )
        if (draft.drawAt != null) drawCommitment = await ensureDrawSeed(trx, id)
        else if (current.drawAt !== null) await deleteEntries(trx, id)
        await this.#checkCodes(trx, id, patch.totalQuantity)
        const now = new Date()
        const changed: Coupon = {
          ...current,
          ...draft,
          drawAt: draft.drawAt ?? null,
          drawCommitment,
          updatedAt: now,
        }
        gateTouched = true
        const result = await this.#gate.configure(
          strictestRules(rulesOf(current), rulesOf(changed)),
        )
        if (result === 'NOT_LOADED') return NOT_LOADED
        if (result === 'QUANTITY_BELOW_ISSUED') {
          gateTouched = false // refused: nothing changed
          throw new AppError(
            'QUANTITY_BELOW_ISSUED',
            `totalQuantity ${draft.totalQuantity} is below the number of coupons already won`,
          )
        }
        // An end already past once the gate took it ("Stop now" sent by a clock
        // behind, or a change that waited for the row lock): the gate granted
        // wins until then, so the row records that moment, and no win falls
        // after the recorded end. Only while the old end was still ahead: an
        // ended coupon keeps the end it had.
        if (patch.issueEnd !== undefined) {
          const took = Math.min(current.issueEnd.getTime(), Math.floor(this.#latest()) + 1)
          if (draft.issueEnd.getTime() < took) {
            draft.issueEnd = new Date(took)
            changed.issueEnd = draft.issueEnd
            tookEnd = took
          }
        }
        await updateCoupon(trx, id, draft, now)
        return changed
      })
    } catch (err) {
      if (gateTouched) await this.#settle(id)
      if (err instanceof AppError || err instanceof UnavailableError) throw err
      throw new UnavailableError('database', err)
    }
    if (next === NOT_LOADED) return NOT_LOADED
    // Step 2 gives the gate the recorded end, a moment ahead of its clock when
    // taken: applied only once it has passed there, it never reopens the coupon.
    if (tookEnd !== null) await this.#untilPast(tookEnd)
    if (!(await this.#settle(id)))
      throw new UnavailableError(
        'redis',
        new Error(`coupon ${id}: the change is still being applied`),
      )
    this.#logger?.info(
      {
        event: 'coupon.changed',
        ...described(next),
        changed: Object.keys(patch).filter((k) => patch[k as keyof CouponPatch] !== undefined),
      },
      `coupon ${id} changed`,
    )
    return next
  }

  /**
   * Step 2 now; if it fails, again in the background until it succeeds. True when
   * the gate holds the recorded rules.
   */
  async #settle(id: number): Promise<boolean> {
    try {
      await this.#applyRecorded(id)
    } catch {
      this.#retryApply(id, APPLY_RETRY_MS.min)
      return false
    }
    return true
  }

  /** The gate takes the rules the database holds, under the coupon's row lock. */
  async #applyRecorded(id: number): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await lockCoupons(trx, [id])
      const coupon = await findCoupon(trx, id)
      if (!coupon) return
      const result = await this.#gate.configure(rulesOf(coupon))
      // Cannot happen while every change goes through step 1 (the gate then holds
      // at most as many wins as either rule allows); said loudly if it does.
      if (result === 'QUANTITY_BELOW_ISSUED')
        throw new Error(`coupon ${id}: the gate holds more wins than the database allows`)
    })
    this.#stopRetry(id)
    await this.#events.publish(id).catch(() => {})
  }

  /**
   * Step 2 for every coupon still current (its window ended less than a day
   * ago): at a process's start, a change whose step 2 was left to a process
   * that died (its retry lived in that process's memory) is applied now.
   */
  async applyRecordedAll(): Promise<void> {
    const since = this.#now() - 86_400_000
    for (const c of await listCoupons(this.#db)) {
      if (c.issueEnd.getTime() < since) continue
      // Most hold their rules already: no lock taken, no change announced.
      if ((await this.#gate.holds?.(rulesOf(c)).catch(() => false)) !== false) continue
      await this.#applyRecorded(c.id).catch(() => this.#retryApply(c.id, APPLY_RETRY_MS.min))
    }
  }

  /** Until no gate node's clock reads before `at` (a few ms; at most UNTIL_PAST_MAX_MS). */
  async #untilPast(at: number): Promise<void> {
    const deadline = performance.now() + UNTIL_PAST_MAX_MS
    while (this.#earliest() < at && performance.now() < deadline)
      await sleep(Math.max(1, Math.ceil(at - this.#earliest())))
  }

  #retryApply(id: number, delayMs: number) {
    if (this.#unapplied.has(id) && delayMs === APPLY_RETRY_MS.min) return
    const timer = setTimeout(() => {
      this.#applyRecorded(id).catch(() =>
        this.#retryApply(id, Math.min(APPLY_RETRY_MS.max, delayMs * 2)),
      )
    }, delayMs)
    timer.unref()
    this.#unapplied.set(id, timer)
  }

  #stopRetry(id: number) {
    const timer = this.#unapplied.get(id)
    if (timer) clearTimeout(timer)
    this.#unapplied.delete(id)
  }

  /**
   * drawAt changes until the draw: not once it is due (it may be running) or has
   * run (409 DRAW_DONE), and a draw is not added to a coupon that already has
   * first-come wins (their ranks are the draw's).
   */
  async #checkDrawChange(trx: Db, current: Coupon, draft: CouponDraft) {
    const same = (draft.drawAt?.getTime() ?? null) === (current.drawAt?.getTime() ?? null)
    if (same) return
    const stage = await this.#drawStage(trx, current)
    if (stage === 'drawn' || stage === 'due')
      throw new AppError('DRAW_DONE', `the draw of coupon ${current.id} has run or is running`)
    if (current.drawAt === null && draft.drawAt != null && (await this.#gate.won(current.id)) > 0)
      throw new AppError(
        'VALIDATION_FAILED',
        `coupon ${current.id} already has first-come wins: a draw cannot be added`,
      )
  }

  /**
   * Where the coupon's draw stands, by the gate's clock: none; ahead; due and
   * not recorded yet (it may be running, with the quantity it read at its
   * start); or drawn (its record written).
   */
  async #drawStage(trx: Db, current: Coupon): Promise<'none' | 'ahead' | 'due' | 'drawn'> {
    if (current.drawAt === null) return 'none'
    if ((await findDraw(trx, current.id))?.drawn) return 'drawn'
    return current.drawAt.getTime() <= this.#now() ? 'due' : 'ahead'
  }

  /**
   * A coupon never holds more partner codes than its quantity: an upload checks
   * under this same row lock (see CodePool), so neither can slip past the other.
   */
  async #checkCodes(trx: Db, id: number, totalQuantity: number | null | undefined) {
    if (totalQuantity === undefined || totalQuantity === null) return
    const codes = await countCodes(trx, id)
    if (codes > totalQuantity)
      throw new AppError(
        'TOO_MANY_CODES',
        `totalQuantity ${totalQuantity} is below the ${codes} codes the coupon holds`,
      )
  }

  async list(): Promise<Coupon[]> {
    return listCoupons(this.#db)
  }

  async get(id: number): Promise<CouponView> {
    const coupon = await this.#readCoupon(id)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${id} does not exist`)
    const [won, codes] = await Promise.all([this.#gate.won(id), countCodes(this.#db, id)])
    // Left to win under the limit that applies (the codes', while fewer).
    const limit = limitOf(coupon.totalQuantity, codes)
    return { ...coupon, remainingQuantity: remainingQuantity({ totalQuantity: limit }, won) }
  }

  async #require(db: Db, id: number): Promise<Coupon> {
    const coupon = await findCoupon(db, id)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${id} does not exist`)
    return coupon
  }
}

/** A coupon as its log lines show it. */
function described(c: Coupon) {
  return {
    couponId: c.id,
    title: c.title,
    totalQuantity: c.totalQuantity,
    issueStart: c.issueStart.toISOString(),
    issueEnd: c.issueEnd.toISOString(),
    drawAt: c.drawAt?.toISOString() ?? null,
  }
}
