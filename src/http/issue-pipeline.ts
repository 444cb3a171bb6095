/**
 * The issue request's one pipeline: every step from a request's headers to its
 * answer, in order, whichever transport carries it — the Fastify routes
 * (issue-routes.ts, compat-routes.ts) or the fast lane (issue-fast-lane.ts). A
 * transport only adapts: it hands over what it read and writes the Answer back.
 *
 *   head(compat)    once the headers are read:  closing → admission
 *   handle(input)   once the body is parsed:    decode → client limit →
 *                   acting user → user limit → overdue → decide → encode
 *
 * Two calls, because the first two steps need no body: a request refused while
 * closing or overloaded costs no body read and no parsing.
 *
 * decode is the routes' TypeBox schemas compiled (TypeCompiler): the same schema
 * Fastify's validator checks. A body that is not the route's shape is not this
 * pipeline's to answer (handle returns null): Fastify's validator answers it, with
 * the 400 message every route uses; the lane hands such a body to Fastify.
 *
 * The client limit is counted after decode, so a request is counted once by
 * whichever transport answers it, and a body that is not the route's shape —
 * which never reaches the gate — is not counted at all.
 *
 * This is the hot path: the steps keep no state of their own (what one step
 * hands the next is arguments), a step makes a closure and a Promise only when
 * it waits (a limit kept in Redis, a token to verify, the gate), and handle
 * answers in the same turn, without a Promise, whenever every step is
 * synchronous (no limits, no user auth, an outcome the service is certain of at
 * once). A Promise it returns never rejects: a failure is answered as the error
 * handler answers it.
 * docs/architecture.md, "The HTTP layer".
 */
import type { IncomingHttpHeaders } from 'node:http'
import { performance } from 'node:perf_hooks'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyBaseLogger } from 'fastify'
import type { IssueOutcome } from '../domain/coupon.js'
import { normaliseUserId } from '../domain/user-id.js'
import type { IssueLimits, Limited } from '../limits/issue-limits.js'
import type { IssueService } from '../service/issue-service.js'
import { actingUser, type UserVerifier } from './auth.js'
import {
  type Answer,
  closingAnswer,
  failureAnswer,
  limitedAnswer,
  outcomeAnswer,
  overloadedAnswer,
} from './issue-endpoint.js'
import type { Overload } from './overload.js'
import { CompatIssueBody, IssueBody, IssueBodyAuthed } from './schemas.js'

export interface IssuePipelineOptions {
  issues: IssueService
  verifyUser: UserVerifier | null
  /** RATE_LIMIT_PER_IP and RATE_LIMIT_PER_USER */
  limits: IssueLimits
  overload: Overload
  /** true once the app has begun to close */
  closing: () => boolean
}

/** What a transport read of one request. */
export interface IssueInput {
  /** one of the original system's routes (answered in its shape), or the native one */
  readonly compat: boolean
  /** the native route's coupon, from its path; a compat route's body names it */
  readonly couponId: number
  /** the parsed JSON body */
  readonly body: unknown
  /** the request's headers: the user's token */
  readonly headers: IncomingHttpHeaders
  /** the client, as the client limit counts it */
  readonly ip: string
  /** the native route's Idempotency-Key, already checked against its pattern */
  readonly key: string | undefined
  /** performance.now() when the request was read: how long it has waited */
  readonly started: number
  /** where a failure is logged */
  readonly log: FastifyBaseLogger
}

// Compiled once; Fastify compiles the same schemas for its validator.
const issueBody = TypeCompiler.Compile(IssueBody)
const issueBodyAuthed = TypeCompiler.Compile(IssueBodyAuthed)
const compatBody = TypeCompiler.Compile(CompatIssueBody)

export class IssuePipeline {
  readonly #o: IssuePipelineOptions
  /** the native route's body: with user auth on, the userId may be left out */
  readonly #issueBody: typeof issueBody | typeof issueBodyAuthed

  constructor(options: IssuePipelineOptions) {
    this.#o = options
    this.#issueBody = options.verifyUser ? issueBodyAuthed : issueBody
  }

  /** Once the headers are read: an answer (refused), or null to read the body. */
  head(compat: boolean): Answer | null {
    if (this.#o.closing()) return closingAnswer(compat)
    if (!this.#o.overload.admit()) return overloadedAnswer(compat)
    return null
  }

  /**
   * Once the body is parsed: the answer, or null when the body is not the
   * route's shape (Fastify's validator answers it).
   */
  handle(input: IssueInput): Answer | Promise<Answer> | null {
    const body = input.body
    let couponId: number
    let claimed: unknown
    if (input.compat) {
      if (!compatBody.Check(body)) return null
      couponId = body.couponId
      claimed = body.userId
    } else {
      if (!this.#issueBody.Check(body)) return null
      couponId = input.couponId
      claimed = body.userId
    }
    const client = this.#o.limits.client(input.ip)
    if (!client) return this.#acting(input, couponId, claimed)
    return client.then((over) => this.#afterLimit(over, input, couponId, claimed))
  }

  #afterLimit(over: Limited | null, input: IssueInput, couponId: number, claimed: unknown) {
    return over ? limitedAnswer(over) : this.#acting(input, couponId, claimed)
  }

  #acting(input: IssueInput, couponId: number, claimed: unknown): Answer | Promise<Answer> {
    const verify = this.#o.verifyUser
    // Without user auth the body's userId is the user (decode vouched for it).
    if (!verify) return this.#userLimit(input, couponId, normaliseUserId(claimed) as string)
    return actingUser(input, verify, claimed).then(
      (userId) => this.#userLimit(input, couponId, userId),
      (err: unknown) => failureAnswer(input.compat, err, input.log),
    )
  }

  #userLimit(input: IssueInput, couponId: number, userId: string): Answer | Promise<Answer> {
    const limited = this.#o.limits.user(userId)
    if (!limited) return this.#decide(input, couponId, userId)
    return limited.then((over) =>
      over ? limitedAnswer(over) : this.#decide(input, couponId, userId),
    )
  }

  /** Answered in this turn when the service is certain at once (a cached refusal). */
  #decide(input: IssueInput, couponId: number, userId: string): Answer | Promise<Answer> {
    if (this.#o.overload.overdue(performance.now() - input.started))
      return overloadedAnswer(input.compat)
    let outcome: IssueOutcome | Promise<IssueOutcome>
    try {
      outcome = this.#o.issues.issue(couponId, userId, input.key)
    } catch (err) {
      return failureAnswer(input.compat, err, input.log)
    }
    if (!(outcome instanceof Promise)) return outcomeAnswer(input.compat, couponId, userId, outcome)
    return outcome.then(
      (decided) => outcomeAnswer(input.compat, couponId, userId, decided),
      (err: unknown) => failureAnswer(input.compat, err, input.log),
    )
  }
}
