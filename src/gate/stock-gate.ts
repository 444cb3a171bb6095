/**
 * The StockGate port: where a coupon is won or refused.
 *
 * A gate holds, per coupon, its rules (window, quantity) and the set of winners
 * with their ranks, and decides window → duplicate → quantity in ONE atomic step
 * that also records the win. Adapters: `memory-stock-gate.ts` (in-process, the
 * embedded default) and `redis-stock-gate.ts` (a Lua script; also enqueues the win
 * on the coupon's stream in that same step). Both pass test/contract/stock-gate.
 */
import type { CouponRules, IssueOutcome, Win } from '../domain/coupon.js'

/** A page of a draw's entrants in pseudonym order: two columns, line k the same entrant. */
export interface EntrantPage {
  pseudonyms: string[]
  userIds: string[]
}

export interface EntryState {
  drawAt: number
  /** the draw has run (and this user is not among its winners unless lookup finds a win) */
  drawn: boolean
}

export type ConfigureResult = 'OK' | 'QUANTITY_BELOW_ISSUED' | 'NOT_LOADED'

export interface StockGate {
  /**
   * A coupon just created: whatever the gate holds under its id is stale (left by
   * a database that was reset while Redis kept its keys) and is dropped; the
   * coupon starts with these rules and no winners.
   */
  register(rules: CouponRules): Promise<void>
  /**
   * Sets a coupon's rules (on every PATCH). Refuses, changing nothing, to lower
   * the quantity below the number already won. Never loads the coupon:
   * NOT_LOADED when the gate holds nothing for it (it reads the rules from the
   * database when next used) — loading takes the coupon's row lock, which the
   * caller may hold.
   */
  configure(rules: CouponRules): Promise<ConfigureResult>
  /**
   * Decides and, on a win, records it with `requestId`. The same request decided
   * again (same user and requestId) gets its win again instead of ALREADY_ISSUED.
   * Throws only when the gate itself is unreachable.
   *
   * `now` is the caller's clock. The in-process gate judges the window by it
   * (one process, one clock); the Redis gate by Redis's own clock, whatever the
   * caller's says. The win carries the instant it was judged by.
   */
  tryIssue(couponId: number, userId: string, now: number, requestId?: string): Promise<IssueOutcome>
  /** The user's win, if the gate accepted one. */
  lookup(couponId: number, userId: string): Promise<Win | null>
  /**
   * lookup, but a coupon the gate holds no state for is answered NOT_LOADED
   * instead of loaded: for a caller holding the coupon's row lock, which loading
   * takes too (it would wait for that caller forever).
   */
  lookupLoaded(couponId: number, userId: string): Promise<Win | null | 'NOT_LOADED'>
  /**
   * Makes sure the gate holds the coupon's state, loading it if not; false: no
   * such coupon. Takes the coupon's row lock to load: never call it holding that lock.
   */
  ensureLoaded(couponId: number): Promise<boolean>
  /**
   * Whether the gate holds the coupon with exactly these rules (window,
   * quantity, drawAt); null when it holds nothing for it. Optional: a gate that
   * outlives the processes (Redis) has it, for a start-up check.
   */
  holds?(rules: CouponRules): Promise<boolean | null>
  /**
   * Partner codes committed to the database, numbered from `firstSeq`, taken in
   * number order: the gate holds codes 1..n, and a coupon that has any never
   * grants more wins than it holds codes (`limitOf`); the win of rank r is
   * answered with code r. The codes the gate already holds are skipped; when it
   * holds fewer than `firstSeq - 1` (an earlier upload not taken yet) nothing is
   * taken. Answers how many codes the gate holds after the call, or NOT_LOADED
   * (a load reads them all from the database). Only codes already committed may
   * be given: the gate may grant their ranks at once.
   */
  appendCodes(
    couponId: number,
    firstSeq: number,
    codes: readonly string[],
  ): Promise<number | 'NOT_LOADED'>
  /** How many wins the gate has accepted for the coupon. */
  won(couponId: number): Promise<number>
  /**
   * The user's entry in the coupon's opening draw: null when the coupon has no
   * draw or the user did not enter; `drawn` once the draw has run.
   */
  entry(couponId: number, userId: string): Promise<EntryState | null>
  /**
   * How many users have entered the coupon's opening draw so far (0: no draw, or
   * none yet): the cockpit's live count. Never loads the coupon.
   */
  entrantCount(couponId: number): Promise<number>
  /** The draw begins: no more entries; requests are answered DRAWING until it is entered. */
  closeEntries(couponId: number): Promise<void>
  /**
   * Enters the draw's winners as wins, in drawn order (ranks 1..n), and marks the
   * draw done. Idempotent: a winner already held is skipped.
   */
  enterWinners(couponId: number, winners: readonly Win[]): Promise<void>
  ping(): Promise<void>
  close(): Promise<void>
}
