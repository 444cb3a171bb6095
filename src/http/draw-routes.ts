/** The opening draw's public answers (docs/draw.md, "The public record"). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { AppError } from '../domain/errors.js'
import { DrawRecord } from '../draw/record.js'
import type { DrawRecords } from '../service/draw-records.js'
import { routeSecurity, tokenCheck } from './auth.js'
import { CouponIdParams, ErrorBody } from './schemas.js'

export interface DrawRoutesOptions {
  draws: DrawRecords
  adminToken: string
}

export const drawRoutes: FastifyPluginAsyncTypebox<DrawRoutesOptions> = async (app, opts) => {
  const { draws } = opts
  const isAdmin = tokenCheck([opts.adminToken])

  app.get(
    '/v1/coupons/:couponId/draw',
    {
      schema: {
        tags: ['public'],
        summary: "The opening draw's record, once it has run",
        description:
          'The seed (revealed after the draw), its commitment, the entrant count and digest, and the winners as pseudonyms, rank 1 first: with the entrant list, what anyone needs to recompute the winners (`firstcome verify-draw`, docs/draw.md). 404 NOT_FOUND until the draw has run.',
        security: routeSecurity.public,
        params: CouponIdParams,
        response: { 200: DrawRecord, '4xx': ErrorBody, '5xx': ErrorBody },
      },
    },
    async (request) => draws.record(Number(request.params.couponId)),
  )

  app.get(
    '/v1/coupons/:couponId/draw/entrants',
    {
      schema: {
        tags: ['public'],
        summary: "The opening draw's entrants: pseudonyms, one a line, sorted",
        description:
          "text/plain: each entrant's pseudonym (hex HMAC-SHA256 of the user id keyed with the seed) and a line feed, in ascending order; its SHA-256 is the record's entrantsDigest. With the admin token, `?as=userIds` lists the plain user ids instead, line k the same entrant. 404 NOT_FOUND until the draw has run.",
        security: routeSecurity.public,
        params: CouponIdParams,
        querystring: Type.Object(
          { as: Type.Optional(Type.Literal('userIds')) },
          { additionalProperties: false },
        ),
        produces: ['text/plain'],
        response: {
          200: {
            description: 'the entrant list',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          '4xx': ErrorBody,
          '5xx': ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const userIds = request.query.as === 'userIds'
      if (userIds && !isAdmin(request))
        throw new AppError('UNAUTHORIZED', 'Listing user ids needs the admin token.')
      const body = await draws.entrantList(Number(request.params.couponId), userIds)
      return reply.header('content-type', 'text/plain; charset=utf-8').send(body)
    },
  )
}
