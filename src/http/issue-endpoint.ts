/**
 * The issue endpoint's answers, shared by its two transports (the Fastify routes
 * and the fast lane) through the pipeline (issue-pipeline.ts): how each outcome
 * and refusal is answered (status, body bytes, headers) and the messages it is
 * answered with.
 * docs/architecture.md, "The HTTP layer".
 */
import type { FastifyBaseLogger } from 'fastify'
import type { IssueOutcome, Refusal } from '../domain/coupon.js'
import { codeToStatus, UnavailableError } from '../domain/errors.js'
import type { Limited } from '../limits/issue-limits.js'
import type { Metrics, RequestTimer } from '../ops/metrics.js'
import { errorAnswer, logUnavailable, RETRY_AFTER_SECONDS, SHUTTING_DOWN } from './errors.js'

/** The native issue route, as Fastify names it (metrics, overload). */
export const ISSUE_ROUTE = '/v1/coupons/:couponId/issues'
/** The original system's issue routes: same bodies, answered in its shape. */
export const COMPAT_ROUTES: ReadonlySet<string> = new Set([
  '/v1/issue',
  '/v1/issue-async',
  '/v2/issue-async',
])

export const CONTENT_TYPE = 'application/json; charset=utf-8'

export const refusalMessages: Record<Refusal, string> = {
  COUPON_NOT_FOUND: 'The coupon does not exist.',
  ISSUE_NOT_STARTED: 'The issue window has not started yet.',
  ISSUE_ENDED: 'The issue window has ended.',
  ALREADY_ISSUED: 'This user has already been issued this coupon.',
  SOLD_OUT: 'All coupons have been issued.',
  NOT_DRAWN: 'This user entered the draw and was not drawn.',
  ENTERED: 'Entered in the draw.',
  DRAWING: 'The draw is running; retry in a moment.',
}

/** The causes the original knew (the draw's outcomes are answered as one of them). */
type OriginalCause = Exclude<Refusal, 'ENTERED' | 'NOT_DRAWN' | 'DRAWING'>

/** The original's messages, by cause. */
export const compatComments: Record<OriginalCause | 'FAILED', string> = {
  SOLD_OUT: '쿠폰 발급 수량이 유효하지 않습니다.',
  ISSUE_NOT_STARTED: '쿠폰 발급 기간이 유효하지 않습니다.',
  ISSUE_ENDED: '쿠폰 발급 기간이 유효하지 않습니다.',
  COUPON_NOT_FOUND: '존재하지 않는 쿠폰입니다.',
  ALREADY_ISSUED: '이미 발급된 쿠폰입니다.',
  FAILED: '쿠폰 발급 요청에 실패했습니다',
}

export const compatSuccess = { isSuccess: true } as const
export const compatFailures = Object.fromEntries(
  Object.entries(compatComments).map(([cause, comment]) => [cause, { isSuccess: false, comment }]),
) as Record<OriginalCause | 'FAILED', { isSuccess: false; comment: string }>

export const OVERLOADED = Object.freeze({
  code: 'UNAVAILABLE',
  message: 'The server is overloaded; retry shortly.',
} as const)

/** What the client is told: status, body bytes, headers beyond content-type and -length. */
export interface Answer {
  readonly status: number
  readonly body: Buffer
  readonly headers?: Readonly<Record<string, string>>
}

const answerOf = (status: number, body: unknown, headers?: Answer['headers']): Answer => ({
  status,
  body: Buffer.from(JSON.stringify(body)),
  headers,
})

const RETRY_AFTER = { 'retry-after': String(RETRY_AFTER_SECONDS) }
// Every answer but a win or an entry is one of a few fixed bodies, built once:
// one per refusal, so a refusal added to REFUSALS does not compile until it has
// its answers here (and its status in codeToStatus).
const refusalAnswer = (code: Exclude<Refusal, 'ENTERED' | 'DRAWING'>) =>
  answerOf(codeToStatus[code], { code, message: refusalMessages[code] })
const refusals: Record<Exclude<Refusal, 'ENTERED'>, Answer> = {
  COUPON_NOT_FOUND: refusalAnswer('COUPON_NOT_FOUND'),
  ISSUE_NOT_STARTED: refusalAnswer('ISSUE_NOT_STARTED'),
  ISSUE_ENDED: refusalAnswer('ISSUE_ENDED'),
  ALREADY_ISSUED: refusalAnswer('ALREADY_ISSUED'),
  SOLD_OUT: refusalAnswer('SOLD_OUT'),
  NOT_DRAWN: refusalAnswer('NOT_DRAWN'),
  DRAWING: answerOf(503, { code: 'UNAVAILABLE', message: refusalMessages.DRAWING }, RETRY_AFTER),
}
const COMPAT_WON = answerOf(200, compatSuccess)
const compatRefusal = (cause: OriginalCause) => answerOf(200, compatFailures[cause])
const compatRefusals: Record<Refusal, Answer> = {
  COUPON_NOT_FOUND: compatRefusal('COUPON_NOT_FOUND'),
  ISSUE_NOT_STARTED: compatRefusal('ISSUE_NOT_STARTED'),
  ISSUE_ENDED: compatRefusal('ISSUE_ENDED'),
  ALREADY_ISSUED: compatRefusal('ALREADY_ISSUED'),
  SOLD_OUT: compatRefusal('SOLD_OUT'),
  // An entry in a draw: the original's clients hear success, as for a win; an
  // entrant not drawn, that the quantity is gone.
  ENTERED: COMPAT_WON,
  NOT_DRAWN: compatRefusal('SOLD_OUT'),
  DRAWING: answerOf(503, compatFailures.FAILED, RETRY_AFTER),
}
const COMPAT_UNAVAILABLE = answerOf(503, compatFailures.FAILED, RETRY_AFTER)
const ISSUE_OVERLOADED = answerOf(503, OVERLOADED, RETRY_AFTER)
const ISSUE_CLOSING = answerOf(503, SHUTTING_DOWN, RETRY_AFTER)

/**
 * The answer to a decided request: 201 (compat: 200) on a win, with the win's
 * partner code when the coupon has one; the refusal's otherwise.
 */
export function outcomeAnswer(
  compat: boolean,
  couponId: number,
  userId: string,
  outcome: IssueOutcome,
): Answer {
  if (compat) return outcome.won ? COMPAT_WON : compatRefusals[outcome.refusal]
  if (!outcome.won) {
    if (outcome.refusal === 'ENTERED') {
      const drawAt = new Date(outcome.drawAt ?? 0).toISOString()
      const body = `{"couponId":${couponId},"userId":${JSON.stringify(userId)},"state":"ENTERED","drawAt":"${drawAt}"}`
      return { status: 202, body: Buffer.from(body) }
    }
    return refusals[outcome.refusal]
  }
  // The partner code: this answer goes to the winner's own request (SPEC).
  const code = outcome.code === undefined ? '' : `,"code":${JSON.stringify(outcome.code)}`
  const body = `{"couponId":${couponId},"userId":${JSON.stringify(userId)},"rank":${outcome.win.rank}${code}}`
  return { status: 201, body: Buffer.from(body) }
}

/** 503 before the gate is asked: the request waited too long. */
export const overloadedAnswer = (compat: boolean): Answer =>
  compat ? COMPAT_UNAVAILABLE : ISSUE_OVERLOADED

/** 503 once the app has begun to close: the client retries elsewhere. */
export const closingAnswer = (compat: boolean): Answer =>
  compat ? COMPAT_UNAVAILABLE : ISSUE_CLOSING

/** 429: the client or the user is over its limit. */
export const limitedAnswer = (limited: Limited): Answer =>
  answerOf(429, limited.body, { 'retry-after': String(limited.retryAfterSeconds) })

/**
 * A failure while answering: a compat route answers a backing service down in
 * the original's shape; everything else as the error handler does (errors.ts).
 */
export function failureAnswer(compat: boolean, err: unknown, log: FastifyBaseLogger): Answer {
  if (compat && err instanceof UnavailableError) {
    logUnavailable(log, err)
    return COMPAT_UNAVAILABLE
  }
  const answer = errorAnswer(err instanceof Error ? err : new Error(String(err)), log)
  return answerOf(answer.status, answer.body, answer.headers)
}

/**
 * The metrics of answers given outside Fastify (whose onResponse hook counts its
 * own): the route's latency by status, and the fast lane's count.
 */
export class EndpointMetrics {
  readonly #metrics: Metrics
  readonly issue: RequestTimer
  readonly #compat: Map<string, RequestTimer>

  constructor(metrics: Metrics) {
    this.#metrics = metrics
    this.issue = metrics.requestTimer('POST', ISSUE_ROUTE)
    this.#compat = new Map(
      [...COMPAT_ROUTES].map((url) => [url, metrics.requestTimer('POST', url)]),
    )
  }

  /** The timer of a compat route by its path, or undefined for any other path. */
  compat(url: string): RequestTimer | undefined {
    return this.#compat.get(url)
  }

  answered(timer: RequestTimer, status: number, seconds: number): void {
    timer.observe(status, seconds)
    this.#metrics.countFastLaneAnswer()
  }
}
