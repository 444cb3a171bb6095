/**
 * The issue pipeline's Fastify transport, shared by the native route
 * (issue-routes.ts) and the compat routes (compat-routes.ts): the pipeline's head
 * as the route's onRequest hook, its handle as the route's handler, its answer's
 * bytes sent as they are (no serializer).
 */
import { performance } from 'node:perf_hooks'
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { type Answer, CONTENT_TYPE } from './issue-endpoint.js'
import type { IssuePipeline } from './issue-pipeline.js'

export function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  reply.code(answer.status).header('content-type', CONTENT_TYPE)
  if (answer.headers) reply.headers(answer.headers)
  return reply.send(answer.body)
}

/** The route's onRequest hook: closing and admission, before the body is read. */
export function pipelineHead(pipeline: IssuePipeline, compat: boolean): onRequestHookHandler {
  return function issuePipelineHead(_request, reply, done) {
    const refused = pipeline.head(compat)
    if (refused) sendAnswer(reply, refused)
    else done()
  }
}

/**
 * The route's handler: the rest of the pipeline, on a body Fastify's validator
 * has passed (so the pipeline's decode, the same schema compiled, passes it too).
 * Answered in this turn when the pipeline answers at once.
 */
export function answerIssue(
  pipeline: IssuePipeline,
  request: FastifyRequest,
  reply: FastifyReply,
  compat: boolean,
  couponId: number,
  key: string | undefined,
): void {
  const answer = pipeline.handle({
    compat,
    couponId,
    body: request.body,
    headers: request.headers,
    ip: request.ip,
    key,
    started: performance.now() - reply.elapsedTime,
    log: request.log,
  })
  // The pipeline's Promise never rejects.
  if (answer instanceof Promise) answer.then((decided) => sendAnswer(reply, decided))
  else if (answer) sendAnswer(reply, answer)
  else reply.send(new Error('the issue pipeline refused a body the route validator passed'))
}
