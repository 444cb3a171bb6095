/**
 * The issue limits on the Fastify routes (issue-fast-lane.ts applies the same
 * ones itself): the client's before anything else is read, the user's once the
 * acting user is known.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IssueLimits, Limited } from '../limits/issue-limits.js'
import { limitedAnswer, sendAnswer } from './issue-endpoint.js'

export function sendLimited(reply: FastifyReply, limited: Limited): FastifyReply {
  return sendAnswer(reply, limitedAnswer(limited))
}

/** The onRequest hook of every issue route, or undefined without a client limit. */
export function clientLimitHook(limits: IssueLimits) {
  if (!limits.perClient) return undefined
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const limited = await limits.client(request.ip)
    if (limited) return sendLimited(reply, limited)
  }
}

/** The user's limit: an answer sent (429), or null to carry on. */
export async function userLimited(
  limits: IssueLimits,
  userId: string,
  reply: FastifyReply,
): Promise<FastifyReply | null> {
  const check = limits.user(userId)
  const limited = check && (await check)
  return limited ? sendLimited(reply, limited) : null
}
