/**
 * The public issue API: issue, the user's status, the coupon's stats.
 * The issue route is the hot path: nothing is logged per request, and it is an
 * adapter of the issue pipeline (issue-pipeline.ts), as the fast lane is.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { AppError } from '../domain/errors.js'
import type { IssueService } from '../service/issue-service.js'
import { routeSecurity, type SpenderTokens, statusReader, type UserVerifier } from './auth.js'
import { ISSUE_ROUTE } from './issue-endpoint.js'
import { answerIssue, pipelineHead } from './issue-fastify.js'
import type { IssuePipeline } from './issue-pipeline.js'
import {
  CouponIdParams,
  EntryOut,
  EntryStatusOut,
  ErrorBody,
  IssueBody,
  IssueBodyAuthed,
  IssueHeaders,
  IssueOut,
  IssueParams,
  IssueStatusOut,
  StatsOut,
} from './schemas.js'

export interface IssueRoutesOptions extends SpenderTokens {
  issues: IssueService
  verifyUser: UserVerifier | null
  pipeline: IssuePipeline
}

async function emptyBodyIfNone(request: FastifyRequest) {
  if (request.body === undefined) request.body = {}
}

export const issueRoutes: FastifyPluginAsyncTypebox<IssueRoutesOptions> = async (app, opts) => {
  const { issues, verifyUser, pipeline } = opts
  const userSecurity = routeSecurity.user(verifyUser !== null)
  const reader = statusReader(opts)

  app.post(
    ISSUE_ROUTE,
    {
      onRequest: pipelineHead(pipeline, false),
      // With user auth on, the token names the user, so a request may carry no body.
      preValidation: verifyUser ? emptyBodyIfNone : undefined,
      schema: {
        tags: ['public'],
        summary: 'Try to win a coupon',
        description:
          '201 with the rank on a win (and `code`, the partner code number rank, when the coupon has codes: a coupon with codes never has more wins than codes); 202 ENTERED before the draw of a coupon that has one (one entry per user; 404 NOT_DRAWN after it for an entrant not drawn); 409 ISSUE_NOT_STARTED / ISSUE_ENDED (window checked first), ALREADY_ISSUED or SOLD_OUT otherwise. With an Idempotency-Key, the same key and user again get the same answer as the win (201, same rank).',
        security: userSecurity,
        headers: IssueHeaders,
        params: CouponIdParams,
        body: verifyUser ? IssueBodyAuthed : IssueBody,
        response: { 201: IssueOut, 202: EntryOut, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    (request, reply) =>
      answerIssue(
        pipeline,
        request,
        reply,
        false,
        Number(request.params.couponId),
        request.headers['idempotency-key'],
      ),
  )

  app.get(
    '/v1/coupons/:couponId/issues/:userId',
    {
      schema: {
        tags: ['public'],
        summary:
          "A user's coupon: QUEUED (won, not yet persisted), ISSUED or USED; ENTERED in a draw",
        description:
          "Before a coupon's draw has run, an entrant's state is ENTERED, with drawAt; after it, an entrant who was not drawn is 404 NOT_DRAWN. `code` (the coupon's partner code for this win, null when it has none) only for the callers who may spend the coupon: the service or admin token, or with user auth on the user's own token. Without a token (user auth off) the answer has no `code`; a token that is none of these is 401.",
        security: routeSecurity.status(verifyUser !== null),
        params: IssueParams,
        response: {
          200: Type.Union([IssueStatusOut, EntryStatusOut]),
          '4xx': ErrorBody,
          '5xx': ErrorBody,
        },
      },
    },
    async (request) => {
      const couponId = Number(request.params.couponId)
      const { userId, withCode } = await reader(request, request.params.userId)
      const status = await issues.status(couponId, userId, withCode)
      if (status) return status
      const entry = await issues.entry(couponId, userId)
      if (entry)
        return { couponId, userId, state: 'ENTERED' as const, drawAt: new Date(entry.drawAt) }
      throw new AppError('NOT_ISSUED', `user ${userId} has not won coupon ${couponId}`)
    },
  )

  app.get(
    '/v1/coupons/:couponId/stats',
    {
      schema: {
        tags: ['public'],
        summary: 'Won, persisted, queued and remaining counts of a coupon',
        security: routeSecurity.public,
        params: CouponIdParams,
        response: { 200: StatsOut, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (request) => issues.stats(Number(request.params.couponId)),
  )
}
