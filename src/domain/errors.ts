/**
 * The one error vocabulary of the service. Every 4xx/5xx body is `{code, message}`
 * with a code from this list; `codeToStatus` is the only place a code meets HTTP.
 */
export const codeToStatus = {
  VALIDATION_FAILED: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  COUPON_NOT_FOUND: 404,
  NOT_ISSUED: 404,
  NOT_DRAWN: 404,
  ISSUE_NOT_STARTED: 409,
  ISSUE_ENDED: 409,
  ALREADY_ISSUED: 409,
  SOLD_OUT: 409,
  QUANTITY_BELOW_ISSUED: 409,
  ALREADY_USED: 409,
  USED_BY_ANOTHER_ORDER: 409,
  TOO_MANY_CODES: 409,
  TOO_FEW_CODES: 409,
  DUPLICATE_CODE: 409,
  DRAW_DONE: 409,
  REQUEST_TIMEOUT: 408,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  ORDER_BELOW_MINIMUM: 422,
  RATE_LIMITED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  UNAVAILABLE: 503,
} as const

export type ErrorCode = keyof typeof codeToStatus

/** A failure the client can act on. Thrown only off the hot path; outcomes are values. */
export class AppError extends Error {
  override readonly name = 'AppError'
  readonly code: ErrorCode
  readonly status: number

  constructor(code: ErrorCode, message: string) {
    super(message)
    this.code = code
    this.status = codeToStatus[code]
  }
}

/**
 * A backing service (Redis, the database) is unreachable or timed out. Answered as
 * 503 UNAVAILABLE with Retry-After; the cause is logged, never sent.
 */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError'
  readonly code = 'UNAVAILABLE' as const
  readonly service: string
  /** what is wrong with it, in a word (the database's: a fault of src/db/errors.ts) */
  readonly reason: string | undefined

  /** detail: the backing service's own code for it, for the log */
  constructor(service: string, cause?: unknown, reason?: string, detail?: string) {
    super(
      `${service} is unavailable${reason ? `: ${reason}` : ''}${detail ? ` (${detail})` : ''}`,
      { cause },
    )
    this.service = service
    this.reason = reason
  }
}
