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
  /** the opening draw (docs/draw.md); null: first-come from issueStart */
  drawAt: Date | null
  /** hex SHA-256 of the draw's secret seed, from the moment drawAt is first set */
  drawCommitment: string | null
}

/** What the gate needs to decide an issue; instants in epoch milliseconds. */
export interface CouponRules {
  couponId: number
  totalQuantity: number | null
  issueStart: number
  issueEnd: number
  /**
   * the opening draw's instant: before it a request inside the window is an
   * entry, not a win; null or absent: no draw
   */
  drawAt?: number | null
}

export function rulesOf(coupon: Coupon): CouponRules {
  return {
    couponId: coupon.id,
    totalQuantity: coupon.totalQuantity,
    issueStart: coupon.issueStart.getTime(),
    issueEnd: coupon.issueEnd.getTime(),
    drawAt: coupon.drawAt === null ? null : coupon.drawAt.getTime(),
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
  /** not a refusal: an entry in the coupon's draw (202), with `drawAt` */
  'ENTERED',
  /** the user entered the draw and was not drawn */
  'NOT_DRAWN',
  /** drawAt has passed and the draw is being run: asked again in a moment, it is decided */
  'DRAWING',
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

/**
 * `code`: the win's partner code (code number rank), when the coupon has one for
 * it; only the answer to the winner's own request carries it.
 */
export type IssueOutcome =
  | { won: true; win: Win; code?: string }
  | { won: false; refusal: Refusal; drawAt?: number; pseudonym?: string }

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

/**
 * The quantity that applies: a coupon with partner codes never has more wins than
 * codes, so while it holds fewer codes than `totalQuantity` (or is unlimited and
 * holds any), the codes are its limit. A coupon without codes: its quantity.
 */
export function limitOf(totalQuantity: number | null, codes: number): number | null {
  if (codes <= 0) return totalQuantity
  return totalQuantity === null ? codes : Math.min(totalQuantity, codes)
}

/** The rules with the limit that applies: the partner codes', while they are fewer. */
export function limitedRules(rules: CouponRules, codes: number): CouponRules {
  return codes > 0 ? { ...rules, totalQuantity: limitOf(rules.totalQuantity, codes) } : rules
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
  /** null or absent: no draw */
  drawAt?: Date | null
}

/**
 * The instants every database keeps as given: MySQL's DATETIME holds the years
 * 1000 to 9999 (and its driver reads 0000–0099 back as 2000–2099 and 1970–1999).
 */
const EARLIEST_INSTANT = Date.UTC(1000, 0, 1)
const LATEST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** Cross-field rules a JSON schema cannot express. Returns a message, or null when valid. */
export function draftProblem(draft: CouponDraft): string | null {
  const { issueStart, issueEnd, drawAt } = draft
  for (const [name, at] of [
    ['issueStart', issueStart],
    ['issueEnd', issueEnd],
    ['drawAt', drawAt],
  ] as const) {
    if (at == null) continue
    const t = at.getTime()
    if (Number.isNaN(t)) return `${name} is not a valid instant`
    if (t < EARLIEST_INSTANT || t > LATEST_INSTANT)
      return `${name} must be in the years 1000 to 9999`
  }
  if (draft.issueEnd.getTime() <= draft.issueStart.getTime()) {
    return 'issueEnd must be after issueStart'
  }
  if (draft.drawAt != null) {
    const at = draft.drawAt.getTime()
    if (at <= draft.issueStart.getTime() || at > draft.issueEnd.getTime())
      return 'drawAt must be after issueStart and no later than issueEnd'
    if (draft.totalQuantity === null) return 'a coupon with a drawAt needs a totalQuantity'
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
  // A draw is the stricter: while either has one, nobody wins before it.
  const drawAt =
    a.drawAt == null
      ? (b.drawAt ?? null)
      : b.drawAt == null
        ? a.drawAt
        : Math.max(a.drawAt, b.drawAt)
  return {
    couponId: a.couponId,
    totalQuantity,
    issueStart: Math.max(a.issueStart, b.issueStart),
    issueEnd: Math.min(a.issueEnd, b.issueEnd),
    drawAt,
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
