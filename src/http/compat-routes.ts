/**
 * The original Spring system's routes, answered in its shape so its clients and
 * load-test scripts run unchanged: HTTP 200 `{"isSuccess": true}` or
 * `{"isSuccess": false, "comment": "<its message>"}`. Bad JSON still gets a 400
 * `{code, message}` like every other route.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import type { Refusal } from '../domain/coupon.js'
import { UnavailableError } from '../domain/errors.js'
import type { IssueLimits } from '../limits/issue-limits.js'
import type { IssueService } from '../service/issue-service.js'
import { actingUser, type UserVerifier } from './auth.js'
import { logUnavailable, RETRY_AFTER_SECONDS } from './errors.js'
import { clientLimitHook, userLimited } from './issue-limit-hooks.js'
import type { Overload } from './overload.js'
import { CompatIssueBody, CompatOut, ErrorBody } from './schemas.js'

export interface CompatRoutesOptions {
  issues: IssueService
  verifyUser: UserVerifier | null
  limits: IssueLimits
  overload: Overload
}

/** The original's messages, by cause. */
export const compatComments: Record<Refusal | 'FAILED', string> = {
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
) as Record<Refusal | 'FAILED', { isSuccess: false; comment: string }>

const unavailable = (reply: FastifyReply) =>
  reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(compatFailures.FAILED)

export const compatRoutes: FastifyPluginAsyncTypebox<CompatRoutesOptions> = async (app, opts) => {
  const { issues, verifyUser, overload, limits } = opts

  for (const url of ['/v1/issue', '/v1/issue-async', '/v2/issue-async']) {
    app.post(
      url,
      {
        onRequest: clientLimitHook(limits),
        schema: {
          tags: ['compatibility'],
          summary: 'The original system’s issue route (same body, same answers)',
          body: CompatIssueBody,
          response: { 200: CompatOut, 503: CompatOut, '4xx': ErrorBody },
        },
      },
      async (request, reply) => {
        const userId = await actingUser(request, verifyUser, request.body.userId)
        const limited = await userLimited(limits, userId, reply)
        if (limited) return limited
        if (overload.overdue(reply.elapsedTime)) return unavailable(reply)
        try {
          const outcome = await issues.issue(request.body.couponId, userId)
          return outcome.won ? compatSuccess : compatFailures[outcome.refusal]
        } catch (err) {
          if (!(err instanceof UnavailableError)) throw err
          logUnavailable(request.log, err)
          return unavailable(reply)
        }
      },
    )
  }

  app.get(
    '/hello',
    {
      schema: {
        tags: ['compatibility'],
        summary: 'The original’s baseline route',
        response: { 200: Type.String() },
      },
    },
    async (_request, reply) => reply.type('text/plain; charset=utf-8').send('hello!'),
  )
}
