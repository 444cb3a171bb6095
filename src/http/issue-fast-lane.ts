/**
 * The issue fast lane: `POST /v1/coupons/{id}/issues` and the original's issue
 * routes, answered on node:http directly when a request is the common case — a
 * JSON body of exactly the expected shape. It skips Fastify's generic lifecycle
 * (router, hooks, content-type parser, validator, serializer, reply), which on
 * these routes cost more CPU than the decision itself (docs/benchmarks.md, "Where
 * the time goes"). Its answers are Fastify's, byte for byte:
 * test/integration/issue-fast-lane.test.ts sends every case both ways.
 *
 * Everything else goes to Fastify, unchanged:
 * - decided from the headers, before the body is read (Fastify then reads it):
 *   other routes and methods, a query string, another content type, a body with
 *   no length, chunked or over the limit, an invalid Idempotency-Key;
 * - decided from the body: not JSON, or not exactly the route's shape (unknown or
 *   missing fields, wrong types, `__proto__`) — Fastify gets the body through
 *   `inject`, so the client hears its usual 400 with the validator's message.
 * Past capacity it refuses a request 503 as Fastify's routes do (overload.ts).
 * It counts RATE_LIMIT_PER_IP and RATE_LIMIT_PER_USER with the same limiter as the
 * Fastify routes. The lane stands aside while the server closes (Fastify answers 503).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import type { IssueOutcome } from '../domain/coupon.js'
import { codeToStatus, UnavailableError } from '../domain/errors.js'
import { isIdempotencyKey } from '../domain/request-id.js'
import { normaliseUserId } from '../domain/user-id.js'
import type { IssueLimits, Limited } from '../limits/issue-limits.js'
import type { Metrics, RequestTimer } from '../ops/metrics.js'
import type { IssueService } from '../service/issue-service.js'
import { actingUser, type UserVerifier } from './auth.js'
import { compatFailures, compatSuccess } from './compat-routes.js'
import { errorAnswer, INTERNAL_ERROR, logUnavailable, RETRY_AFTER_SECONDS } from './errors.js'
import { refusalBodies } from './issue-routes.js'
import { OVERLOADED, type Overload } from './overload.js'
import { COUPON_ID_DIGITS } from './schemas.js'

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

export interface IssueFastLaneOptions {
  issues: IssueService
  metrics: Metrics
  verifyUser: UserVerifier | null
  /** the app's body limit: a longer body is Fastify's to refuse */
  bodyLimit: number
  /** true once the app has begun to close */
  closing: () => boolean
  overload: Overload
  /** RATE_LIMIT_PER_IP and RATE_LIMIT_PER_USER, counted as on the Fastify routes */
  limits: IssueLimits
  /** TRUST_PROXY: the client is the leftmost X-Forwarded-For address, as Fastify's request.ip */
  trustProxy: boolean
}

const now = () => performance.now()
export const ISSUE_ROUTE = '/v1/coupons/:couponId/issues'
const ISSUE_PATH = new RegExp(`^/v1/coupons/(${COUPON_ID_DIGITS})/issues$`)
export const COMPAT_ROUTES: ReadonlySet<string> = new Set([
  '/v1/issue',
  '/v1/issue-async',
  '/v2/issue-async',
])
const JSON_TYPE = /^application\/json\s*(?:;\s*charset=utf-8\s*)?$/i
const CONTENT_TYPE = 'application/json; charset=utf-8'
/** Headers of an injected answer that belong to its own connection, not the client's. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date'])

interface Answer {
  status: number
  body: Buffer
  /** headers beyond content-type and content-length (Retry-After of a 503) */
  headers?: Readonly<Record<string, string>>
}

const answerOf = (status: number, body: unknown, headers?: Answer['headers']): Answer => ({
  status,
  body: Buffer.from(JSON.stringify(body)),
  headers,
})

/** Every answer but a win is one of a few fixed bodies: built once. */
const refusals = Object.fromEntries(
  Object.entries(refusalBodies).map(([code, body]) => [
    code,
    answerOf(codeToStatus[body.code], body),
  ]),
) as Record<keyof typeof refusalBodies, Answer>
const compatAnswers = Object.fromEntries(
  Object.entries(compatFailures).map(([cause, body]) => [cause, answerOf(200, body)]),
) as Record<keyof typeof compatFailures, Answer>
const COMPAT_WON = answerOf(200, compatSuccess)
const RETRY_AFTER = { 'retry-after': String(RETRY_AFTER_SECONDS) }
const COMPAT_UNAVAILABLE = answerOf(503, compatFailures.FAILED, RETRY_AFTER)
const ISSUE_OVERLOADED = answerOf(503, OVERLOADED, RETRY_AFTER)
const limitedAnswer = (limited: Limited) =>
  answerOf(429, limited.body, { 'retry-after': String(limited.retryAfterSeconds) })
const overloaded = (lane: Lane) => (lane.compat ? COMPAT_UNAVAILABLE : ISSUE_OVERLOADED)

interface Lane {
  /** the Fastify route it stands for: its metrics */
  timer: RequestTimer
  compat: boolean
  /** from the path (issue route); the compat routes carry it in the body */
  couponId: number
  /** the issue route's Idempotency-Key, valid (an invalid one is Fastify's 400) */
  key: string | undefined
  started: number
}

export class IssueFastLane {
  readonly #o: IssueFastLaneOptions
  readonly #issueTimer: RequestTimer
  readonly #compatTimers: Map<string, RequestTimer>
  #app: FastifyInstance | null = null

  constructor(options: IssueFastLaneOptions) {
    this.#o = options
    this.#issueTimer = options.metrics.requestTimer('POST', ISSUE_ROUTE)
    this.#compatTimers = new Map(
      [...COMPAT_ROUTES].map((url) => [url, options.metrics.requestTimer('POST', url)]),
    )
  }

  /** The server's request handler: the lane's requests here, the rest to Fastify. */
  handler(fastify: RequestHandler): RequestHandler {
    return (req, res) => {
      if (!this.#take(req, res)) fastify(req, res)
    }
  }

  /** Once the app is built: bodies to replay go to it. */
  attach(app: FastifyInstance): void {
    this.#app = app
  }

  #take(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || this.#o.closing() || !this.#app) return false
    const lane = this.#laneOf(req.url ?? '')
    if (!lane) return false
    const headers = req.headers
    const type = headers['content-type']
    if (type === undefined || (type !== 'application/json' && !JSON_TYPE.test(type))) return false
    if (headers['transfer-encoding'] !== undefined) return false
    const length = Number(headers['content-length'])
    if (!(length >= 1 && length <= this.#o.bodyLimit)) return false
    if (!lane.compat) {
      const key = headers['idempotency-key']
      if (key !== undefined && !isIdempotencyKey(key)) return false
      lane.key = key
    }
    // Admission (overload.ts), once the lane takes the request (the rest is
    // Fastify's, checked in its onRequest): refused before its body is read
    // (node:http reads and drops it after the answer).
    if (!this.#o.overload.admit()) {
      this.#send(res, lane, overloaded(lane))
      return true
    }

    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
      this.#answer(req, res, lane, body)
    })
    // A client gone mid-body: no 'end', nothing to answer. (node:http emits no
    // 'error' on a request that has no listener for it, so none is added.)
    return true
  }

  #laneOf(url: string): Lane | null {
    const compatTimer = this.#compatTimers.get(url)
    if (compatTimer)
      return { timer: compatTimer, compat: true, couponId: 0, key: undefined, started: now() }
    const m = ISSUE_PATH.exec(url)
    if (!m) return null
    const couponId = Number(m[1])
    return { timer: this.#issueTimer, compat: false, couponId, key: undefined, started: now() }
  }

  #answer(req: IncomingMessage, res: ServerResponse, lane: Lane, body: Buffer) {
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString())
    } catch {
      return this.#replay(req, res, body)
    }
    const request = lane.compat
      ? compatRequest(parsed)
      : issueRequest(parsed, lane.couponId, !!this.#o.verifyUser)
    if (!request) return this.#replay(req, res, body)
    // The client's limit, as Fastify's onRequest hook counts it: once, and only
    // for a request the lane answers (a replayed one is counted by Fastify).
    const limited = this.#o.limits.client(this.#clientIp(req))
    if (!limited) return this.#act(req, res, lane, request)
    limited.then((over) =>
      over ? this.#send(res, lane, limitedAnswer(over)) : this.#act(req, res, lane, request),
    )
  }

  #act(req: IncomingMessage, res: ServerResponse, lane: Lane, request: IssueRequest) {
    const { couponId } = request
    // Without user auth the body's userId is the user (the shape check vouched for it).
    if (!this.#o.verifyUser)
      return this.#issue(res, lane, couponId, normaliseUserId(request.userId) as string)
    actingUser(req, this.#o.verifyUser, request.userId).then(
      (userId) => this.#issue(res, lane, couponId, userId),
      (err: unknown) => this.#send(res, lane, this.#failure(lane, err)),
    )
  }

  #issue(res: ServerResponse, lane: Lane, couponId: number, userId: string) {
    const limited = this.#o.limits.user(userId)
    if (!limited) return this.#decide(res, lane, couponId, userId)
    limited.then((over) =>
      over ? this.#send(res, lane, limitedAnswer(over)) : this.#decide(res, lane, couponId, userId),
    )
  }

  #clientIp(req: IncomingMessage): string {
    const forwarded = this.#o.trustProxy ? req.headers['x-forwarded-for'] : undefined
    const first = typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim() : ''
    return first || (req.socket.remoteAddress ?? '')
  }

  /** Answered in this turn when the service is certain at once (a cached refusal). */
  #decide(res: ServerResponse, lane: Lane, couponId: number, userId: string) {
    if (this.#o.overload.overdue(now() - lane.started))
      return this.#send(res, lane, overloaded(lane))
    const outcome = this.#o.issues.issue(couponId, userId, lane.key)
    if (!(outcome instanceof Promise))
      return this.#send(res, lane, answerFor(lane, couponId, userId, outcome))
    outcome.then(
      (decided) => this.#send(res, lane, answerFor(lane, couponId, userId, decided)),
      (err: unknown) => this.#send(res, lane, this.#failure(lane, err)),
    )
  }

  #failure(lane: Lane, err: unknown): Answer {
    const log = (this.#app as FastifyInstance).log
    if (lane.compat && err instanceof UnavailableError) {
      // The original's shape even for a 503 (as the compat route answers it).
      logUnavailable(log, err)
      return COMPAT_UNAVAILABLE
    }
    const answer = errorAnswer(err instanceof Error ? err : new Error(String(err)), log)
    return answerOf(answer.status, answer.body, answer.headers)
  }

  #send(res: ServerResponse, lane: Lane, answer: Answer) {
    const headers = ['content-type', CONTENT_TYPE, 'content-length', String(answer.body.length)]
    if (answer.headers)
      for (const [name, value] of Object.entries(answer.headers)) headers.push(name, value)
    // As Fastify does for a request answered once closing has begun.
    if (this.#o.closing()) headers.push('connection', 'close')
    res.writeHead(answer.status, headers)
    res.end(answer.body)
    lane.timer.observe(answer.status, (now() - lane.started) / 1000)
    this.#o.metrics.countFastLaneAnswer()
  }

  /** Fastify answers a body the lane does not take, exactly as if it had read it. */
  #replay(req: IncomingMessage, res: ServerResponse, body: Buffer) {
    const app = this.#app as FastifyInstance
    app
      .inject({
        method: 'POST',
        url: req.url ?? '/',
        headers: req.headers,
        payload: body,
        remoteAddress: req.socket.remoteAddress,
      })
      .then(
        (injected) => {
          for (const [name, value] of Object.entries(injected.headers)) {
            if (value !== undefined && !HOP_HEADERS.has(name)) res.setHeader(name, value)
          }
          if (this.#o.closing()) res.setHeader('connection', 'close')
          res.writeHead(injected.statusCode)
          res.end(injected.rawPayload)
        },
        (err: unknown) => {
          app.log.error({ err }, 'replaying a request through Fastify failed')
          res.writeHead(500, ['content-type', CONTENT_TYPE])
          res.end(JSON.stringify(INTERNAL_ERROR))
        },
      )
  }
}

function answerFor(lane: Lane, couponId: number, userId: string, outcome: IssueOutcome): Answer {
  if (lane.compat) return outcome.won ? COMPAT_WON : compatAnswers[outcome.refusal]
  if (!outcome.won) return refusals[outcome.refusal]
  const body = `{"couponId":${couponId},"userId":${JSON.stringify(userId)},"rank":${outcome.win.rank}}`
  return { status: 201, body: Buffer.from(body) }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

function keyCount(o: Record<string, unknown>): number {
  let n = 0
  for (const _ in o) n++
  return n
}

/** What a request asks for: the user it claims to be, for which coupon. */
interface IssueRequest {
  userId: unknown
  couponId: number
}

/**
 * `{userId}` exactly, userId valid (IssueBody); with user auth on the field may be
 * left out (IssueBodyAuthed). The coupon is the path's. null: not this shape,
 * Fastify decides.
 */
function issueRequest(body: unknown, couponId: number, authOn: boolean): IssueRequest | null {
  if (!isPlainObject(body)) return null
  const n = keyCount(body)
  if (n === 0 && authOn) return { userId: undefined, couponId }
  if (n !== 1 || !Object.hasOwn(body, 'userId') || normaliseUserId(body.userId) === null)
    return null
  return { userId: body.userId, couponId }
}

const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1

/** `{userId, couponId}` exactly, both positive integers (CompatIssueBody). */
function compatRequest(body: unknown): IssueRequest | null {
  if (!isPlainObject(body) || keyCount(body) !== 2) return null
  const { userId, couponId } = body
  if (!isId(userId) || !isId(couponId)) return null
  return { userId, couponId }
}
