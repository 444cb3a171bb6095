/**
 * The public issue API: issue, the user's status, the coupon's stats.
 * The issue route is the hot path: refusals are prebuilt values, nothing is logged
 * per request, and the body is serialized from its schema.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { Refusal } from '../domain/coupon.js'
import { AppError, codeToStatus } from '../domain/errors.js'
import type { IssueLimits } from '../limits/issue-limits.js'
import { type IssueService, refusalMessages } from '../service/issue-service.js'
import { actingUser, type UserVerifier } from './auth.js'
import { RETRY_AFTER_SECONDS } from './errors.js'
import { clientLimitHook, userLimited } from './issue-limit-hooks.js'
import { OVERLOADED, type Overload } from './overload.js'
import {
  CouponIdParams,
  ErrorBody,
  IssueBody,
  IssueBodyAuthed,
  IssueHeaders,
  IssueOut,
  IssueParams,
  IssueStatusOut,
  StatsOut,
} from './schemas.js'

export interface IssueRoutesOptions {
  issues: IssueService
  verifyUser: UserVerifier | null
  limits: IssueLimits
  overload: Overload
}

export const refusalBodies = Object.fromEntries(
  Object.entries(refusalMessages).map(([code, message]) => [code, { code, message }]),
) as Record<Refusal, { code: Refusal; message: string }>

async function emptyBodyIfNone(request: FastifyRequest) {
  if (request.body === undefined) request.body = {}
}

export const issueRoutes: FastifyPluginAsyncTypebox<IssueRoutesOptions> = async (app, opts) => {
  const { issues, verifyUser, overload, limits } = opts
  const userSecurity = verifyUser ? [{ userToken: [] }] : undefined

  app.post(
    '/v1/coupons/:couponId/issues',
    {
      onRequest: clientLimitHook(limits),
      // With user auth on, the token names the user, so a request may carry no body.
      preValidation: verifyUser ? emptyBodyIfNone : undefined,
      schema: {
        tags: ['public'],
        summary: 'Try to win a coupon',
        description:
          '201 with the rank on a win; 409 ISSUE_NOT_STARTED / ISSUE_ENDED (window checked first), ALREADY_ISSUED or SOLD_OUT otherwise. With an Idempotency-Key, the same key and user again get the same answer as the win (201, same rank).',
        security: userSecurity,
        headers: IssueHeaders,
        params: CouponIdParams,
        body: verifyUser ? IssueBodyAuthed : IssueBody,
        response: { 201: IssueOut, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (request, reply) => {
      const couponId = Number(request.params.couponId)
      const userId = await actingUser(request, verifyUser, request.body?.userId)
      const limited = await userLimited(limits, userId, reply)
      if (limited) return limited
      if (overload.overdue(reply.elapsedTime))
        return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(OVERLOADED)
      const outcome = await issues.issue(couponId, userId, request.headers['idempotency-key'])
      if (outcome.won) return reply.code(201).send({ couponId, userId, rank: outcome.win.rank })
      return reply.code(codeToStatus[outcome.refusal]).send(refusalBodies[outcome.refusal])
    },
  )

  app.get(
    '/v1/coupons/:couponId/issues/:userId',
    {
      schema: {
        tags: ['public'],
        summary: "A user's coupon: QUEUED (won, not yet persisted), ISSUED or USED",
        security: userSecurity,
        params: IssueParams,
        response: { 200: IssueStatusOut, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (request) => {
      const couponId = Number(request.params.couponId)
      const userId = await actingUser(request, verifyUser, request.params.userId)
      const status = await issues.status(couponId, userId)
      if (!status) throw new AppError('NOT_ISSUED', `user ${userId} has not won coupon ${couponId}`)
      return status
    },
  )

  app.get(
    '/v1/coupons/:couponId/stats',
    {
      schema: {
        tags: ['public'],
        summary: 'Won, persisted, queued and remaining counts of a coupon',
        params: CouponIdParams,
        response: { 200: StatsOut, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (request) => issues.stats(Number(request.params.couponId)),
  )
}
