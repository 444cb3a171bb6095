/**
 * The coupon domain: what a coupon is, and the pure rules that decide an issue.
 * Both stock gates (in-process and Redis/Lua) implement exactly `decideIssue`.
 */

export const COUPON_TYPE = 'FIRST_COME_FIRST_SERVED'
export type CouponType = typeof COUPON_TYPE

export const INT32_MAX = 2_147_483_647

export interface Coupon {
  id: number
  title: string
  type: CouponType
  /** null = unlimited */
  totalQuantity: number | null
  /** rows persisted in coupon_issues so far */
  issuedQuantity: number
  discountAmount: number
  minAvailableAmount: number
  issueStart: Date
  issueEnd: Date
  createdAt: Date
  updatedAt: Date
}

/** What the gate needs to decide an issue; instants in epoch milliseconds. */
export interface CouponRules {
  couponId: number
  totalQuantity: number | null
  issueStart: number
  issueEnd: number
}

export function rulesOf(coupon: Coupon): CouponRules {
  return {
    couponId: coupon.id,
    totalQuantity: coupon.totalQuantity,
    issueStart: coupon.issueStart.getTime(),
    issueEnd: coupon.issueEnd.getTime(),
  }
}

/**
 * Outcomes are values: a refusal is an answer, not a failure. The one list of
 * them: every table keyed by refusal (messages, metrics, the gate's codes) is a
 * `Record<Refusal, …>` or is made from this list, so a refusal added here fails
 * to compile until each of them handles it.
 */
export const REFUSALS = [
  'COUPON_NOT_FOUND',
  'ISSUE_NOT_STARTED',
  'ISSUE_ENDED',
  'ALREADY_ISSUED',
  'SOLD_OUT',
] as const

export type Refusal = (typeof REFUSALS)[number]

export interface Win {
  couponId: number
  userId: string
  /** 1-based order in which the gate accepted the win */
  rank: number
  /** epoch ms at which the gate accepted it */
  issuedAt: number
  /**
   * the id of the request that won it (its Idempotency-Key, or one the service
   * made), kept with the win so the same request asked again gets it again
   */
  requestId?: string
}

export type IssueOutcome = { won: true; win: Win } | { won: false; refusal: Refusal }

/** The window is `issueStart <= now < issueEnd`. */
export function windowRefusal(rules: CouponRules, now: number): Refusal | null {
  if (now < rules.issueStart) return 'ISSUE_NOT_STARTED'
  if (now >= rules.issueEnd) return 'ISSUE_ENDED'
  return null
}

export function isSoldOut(rules: CouponRules, won: number): boolean {
  return rules.totalQuantity !== null && won >= rules.totalQuantity
}

/**
 * The order of checks every gate follows: window, then duplicate, then quantity.
 * `alreadyWon` and `won` must be read in the same atomic step that records the win.
 */
export function decideIssue(
  rules: CouponRules,
  alreadyWon: boolean,
  won: number,
  now: number,
): Refusal | null {
  return (
    windowRefusal(rules, now) ??
    (alreadyWon ? 'ALREADY_ISSUED' : isSoldOut(rules, won) ? 'SOLD_OUT' : null)
  )
}

export function remainingQuantity(rules: Pick<CouponRules, 'totalQuantity'>, won: number) {
  return rules.totalQuantity === null ? null : Math.max(0, rules.totalQuantity - won)
}

/** Fields an admin may set; the result of a create or a patch is validated as a whole. */
export interface CouponDraft {
  title: string
  totalQuantity: number | null
  discountAmount: number
  minAvailableAmount: number
  issueStart: Date
  issueEnd: Date
}

/** Cross-field rules a JSON schema cannot express. Returns a message, or null when valid. */
export function draftProblem(draft: CouponDraft): string | null {
  if (Number.isNaN(draft.issueStart.getTime())) return 'issueStart is not a valid instant'
  if (Number.isNaN(draft.issueEnd.getTime())) return 'issueEnd is not a valid instant'
  if (draft.issueEnd.getTime() <= draft.issueStart.getTime()) {
    return 'issueEnd must be after issueStart'
  }
  return null
}

/** Lowering the quantity below the number already won would take back coupons. */
export function quantityBelowWon(totalQuantity: number | null, won: number): boolean {
  return totalQuantity !== null && totalQuantity < won
}

/**
 * Rules no looser than either: the later start, the earlier end, the smaller
 * quantity. A win granted under them is valid under both, whichever of the two
 * ends up recorded (an admin change in flight). The window may be empty.
 */
export function strictestRules(a: CouponRules, b: CouponRules): CouponRules {
  const totalQuantity =
    a.totalQuantity === null
      ? b.totalQuantity
      : b.totalQuantity === null
        ? a.totalQuantity
        : Math.min(a.totalQuantity, b.totalQuantity)
  return {
    couponId: a.couponId,
    totalQuantity,
    issueStart: Math.max(a.issueStart, b.issueStart),
    issueEnd: Math.min(a.issueEnd, b.issueEnd),
  }
}

/**
 * Ranks freed or never persisted below the highest rank in use. A gate rebuilt from
 * rows whose ranks have gaps hands these out first, so a sold-out coupon still ends
 * with ranks exactly 1..totalQuantity.
 */
export function rankHoles(ranks: Iterable<number>): number[] {
  const used = new Set(ranks)
  let max = 0
  for (const r of used) if (r > max) max = r
  const holes: number[] = []
  for (let r = 1; r <= max; r++) if (!used.has(r)) holes.push(r)
  return holes
}
