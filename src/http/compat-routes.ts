/**
 * The original Spring system's routes, answered in its shape so its clients and
 * load-test scripts run unchanged: HTTP 200 `{"isSuccess": true}` or
 * `{"isSuccess": false, "comment": "<its message>"}`. Bad JSON still gets a 400
 * `{code, message}` like every other route.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { UnavailableError } from '../domain/errors.js'
import type { IssueLimits } from '../limits/issue-limits.js'
import type { IssueService } from '../service/issue-service.js'
import { actingUser, routeSecurity, type UserVerifier } from './auth.js'
import {
  COMPAT_ROUTES,
  failureAnswer,
  outcomeAnswer,
  overloadedAnswer,
  sendAnswer,
} from './issue-endpoint.js'
import { clientLimitHook, userLimited } from './issue-limit-hooks.js'
import type { Overload } from './overload.js'
import { CompatIssueBody, CompatOut, ErrorBody } from './schemas.js'

export interface CompatRoutesOptions {
  issues: IssueService
  verifyUser: UserVerifier | null
  limits: IssueLimits
  overload: Overload
}

export const compatRoutes: FastifyPluginAsyncTypebox<CompatRoutesOptions> = async (app, opts) => {
  const { issues, verifyUser, overload, limits } = opts

  for (const url of COMPAT_ROUTES) {
    app.post(
      url,
      {
        onRequest: clientLimitHook(limits),
        schema: {
          tags: ['compatibility'],
          summary: 'The original system’s issue route (same body, same answers)',
          security: routeSecurity.user(verifyUser !== null),
          body: CompatIssueBody,
          response: { 200: CompatOut, 503: CompatOut, '4xx': ErrorBody },
        },
      },
      async (request, reply) => {
        const userId = await actingUser(request, verifyUser, request.body.userId)
        const limited = await userLimited(limits, userId, reply)
        if (limited) return limited
        if (overload.overdue(reply.elapsedTime)) return sendAnswer(reply, overloadedAnswer(true))
        const { couponId } = request.body
        try {
          const outcome = await issues.issue(couponId, userId)
          return sendAnswer(reply, outcomeAnswer(true, couponId, userId, outcome))
        } catch (err) {
          if (!(err instanceof UnavailableError)) throw err
          return sendAnswer(reply, failureAnswer(true, err, request.log))
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
        security: routeSecurity.public,
        response: { 200: Type.String() },
      },
    },
    async (_request, reply) => reply.type('text/plain; charset=utf-8').send('hello!'),
  )
}
