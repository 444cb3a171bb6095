/**
 * Names each HTTP answer by status and, for refusals, by the `code` of its body,
 * without JSON.parse on every response: the service serializes bodies from their
 * schema, so `code` (or the compat routes' `isSuccess`) is always the first key,
 * and the first bytes of a body say everything the bench needs.
 */
import { compatComments } from './service-messages.js'

/** Bytes of a body that identify its outcome; longer prefixes are cut here. */
export const OUTCOME_PREFIX_BYTES = 96

const CODE = /^\s*\{\s*"code"\s*:\s*"([A-Za-z0-9_]{1,40})"/
const COMPAT = /^\s*\{\s*"isSuccess"\s*:\s*(true|false)/

// The original's messages name the cause; several causes share one message.
const compatCauses = new Map<string, string>()
for (const [cause, comment] of Object.entries(compatComments)) {
  const known = compatCauses.get(comment)
  compatCauses.set(comment, known ? `${known}|${cause}` : cause)
}

/**
 * The outcome key of one answer: `201`, `409 SOLD_OUT`, `200 isSuccess`,
 * `200 isSuccess=false SOLD_OUT`, or the bare status when the body names nothing.
 * `prefix` is the start of the body (utf-8). The common shapes are matched with
 * startsWith/indexOf; the regular expressions only see bodies spaced differently.
 */
export function classify(status: number, prefix: string): string {
  if (prefix.startsWith('{"code":"')) {
    const end = prefix.indexOf('"', 9)
    if (end > 9) return `${status} ${prefix.slice(9, end)}`
  }
  if (prefix.startsWith('{"isSuccess":true')) return `${status} isSuccess`
  if (prefix.startsWith('{"couponId":')) return String(status)
  const code = CODE.exec(prefix)
  if (code) return `${status} ${code[1]}`
  const compat = COMPAT.exec(prefix)
  if (compat) {
    if (compat[1] === 'true') return `${status} isSuccess`
    const comment = /"comment"\s*:\s*"([^"]*)"/.exec(prefix)?.[1]
    const cause = comment === undefined ? undefined : compatCauses.get(comment)
    return `${status} isSuccess=false${cause ? ` ${cause}` : ''}`
  }
  return String(status)
}

/** Which answers count as successes in each scenario, and which one is a win. */
export interface Expectation {
  /** outcome keys that are expected answers (anything else is a failure) */
  ok: (key: string) => boolean
  /** the key of a won coupon */
  win: string
}

export function expectationFor(scenario: 'seed' | 'win' | 'compat' | 'draw'): Expectation {
  // An entry in a draw: 202, the same again for a user who entered before.
  if (scenario === 'draw') return { ok: (k) => k === '202', win: '202' }
  if (scenario === 'compat') {
    return { ok: (k) => k.startsWith('200 isSuccess'), win: '200 isSuccess' }
  }
  if (scenario === 'win') return { ok: (k) => k === '201', win: '201' }
  return {
    ok: (k) => k === '201' || k === '409 SOLD_OUT' || k === '409 ALREADY_ISSUED',
    win: '201',
  }
}

/** Splits outcome counts into answers the scenario expects and failures. */
export function tallyOutcomes(counts: Readonly<Record<string, number>>, expect: Expectation) {
  let ok = 0
  let unexpected = 0
  for (const [key, n] of Object.entries(counts)) {
    if (expect.ok(key)) ok += n
    else unexpected += n
  }
  return { ok, unexpected, wins: counts[expect.win] ?? 0 }
}
