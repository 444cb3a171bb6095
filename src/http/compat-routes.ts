/**
 * The original Spring system's routes, answered in its shape so its clients and
 * load-test scripts run unchanged: HTTP 200 `{"isSuccess": true}` or
 * `{"isSuccess": false, "comment": "<its message>"}`. Bad JSON still gets a 400
 * `{code, message}` like every other route. The issue routes are adapters of the
 * issue pipeline (issue-pipeline.ts), as the native route and the fast lane are.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { routeSecurity } from './auth.js'
import { COMPAT_ROUTES } from './issue-endpoint.js'
import { answerIssue, pipelineHead } from './issue-fastify.js'
import type { IssuePipeline } from './issue-pipeline.js'
import { CompatIssueBody, CompatOut, ErrorBody } from './schemas.js'

export interface CompatRoutesOptions {
  pipeline: IssuePipeline
  /** user auth on: the user's token is asked for */
  userAuth: boolean
}

export const compatRoutes: FastifyPluginAsyncTypebox<CompatRoutesOptions> = async (app, opts) => {
  const { pipeline, userAuth } = opts

  for (const url of COMPAT_ROUTES) {
    app.post(
      url,
      {
        onRequest: pipelineHead(pipeline, true),
        schema: {
          tags: ['compatibility'],
          summary: 'The original system’s issue route (same body, same answers)',
          security: routeSecurity.user(userAuth),
          body: CompatIssueBody,
          response: { 200: CompatOut, 503: CompatOut, '4xx': ErrorBody },
        },
      },
      (request, reply) => answerIssue(pipeline, request, reply, true, 0, undefined),
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
