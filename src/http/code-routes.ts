/**
 * Partner codes and the winners' export (admin): upload codes (JSON, CSV or
 * generated), read how many a coupon holds, download every win as CSV.
 *
 * The upload is the one route whose body may be large (a million codes): its
 * body limit is its own, every other route keeps the app's. The CSV parser is
 * registered in this plugin only, so no other route takes `text/csv`.
 */
import type { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { type CodeList, MAX_CODE_LENGTH, MAX_CODES_PER_CALL } from '../domain/codes.js'
import { AppError } from '../domain/errors.js'
import type { CodePool } from '../service/code-pool.js'
import type { WinnersExport } from '../service/winners-export.js'
import { adminGuard, routeSecurity } from './auth.js'
import { codesFromCsv, hasHeader } from './csv-codes.js'
import { CodeCountOut, CodeUploadBody, CouponIdParams, ErrorBody } from './schemas.js'
import { winnersCsv } from './winners-csv.js'

export interface CodeRoutesOptions {
  codes: CodePool
  winners: WinnersExport
  adminToken: string
}

/**
 * The upload's body limit: a million codes of the longest kind, one a line with
 * CRLF, or quoted and comma-separated in JSON, and room to spare.
 */
export const CODES_BODY_LIMIT = MAX_CODES_PER_CALL * (MAX_CODE_LENGTH + 4) + 64 * 1024

/** A download that takes nothing for this long is cut, and its cursor closed. */
export const EXPORT_IDLE_MS = 60_000

const errors = { '4xx': ErrorBody, '5xx': ErrorBody }

function tooLarge(request: FastifyRequest) {
  const length = Number(request.headers['content-length'])
  return Number.isFinite(length) && length > CODES_BODY_LIMIT
}

export const codeRoutes: FastifyPluginAsyncTypebox<CodeRoutesOptions> = async (app, opts) => {
  const { codes, winners } = opts
  const onRequest = adminGuard(opts.adminToken)

  // A CSV body's codes, read into a CodeList (not an array the body schema could
  // check): the body itself is left empty, and the route takes the list from here.
  const csvCodes = new WeakMap<FastifyRequest, CodeList>()
  app.addContentTypeParser('text/csv', async (request: FastifyRequest, payload: Readable) => {
    if (tooLarge(request)) throw new AppError('PAYLOAD_TOO_LARGE', 'The request body is too large.')
    const header = hasHeader(request.headers['content-type'])
    csvCodes.set(request, await codesFromCsv(payload, { header, limitBytes: CODES_BODY_LIMIT }))
    return {}
  })

  app.post(
    '/v1/coupons/:couponId/codes',
    {
      onRequest,
      bodyLimit: CODES_BODY_LIMIT,
      schema: {
        tags: ['admin'],
        summary: "Append partner codes to a coupon's pool (all or nothing)",
        description:
          'Body: JSON `{"codes": [...]}` or `{"generate": n}`, or `text/csv`, one code a line (`header=present` in the type skips a header line). Each code: 1..128 printable ASCII characters, no space at either end, unique within the coupon. Up to 1,000,000 a call. Answers the coupon\'s total. 409 TOO_MANY_CODES (more codes than totalQuantity), 409 TOO_FEW_CODES (a first upload with fewer codes than the wins the coupon already has), 409 DUPLICATE_CODE (a code already in the call or the coupon); on any refusal nothing of the call is stored.',
        security: routeSecurity.admin,
        consumes: ['application/json', 'text/csv'],
        params: CouponIdParams,
        body: CodeUploadBody,
        response: { 200: CodeCountOut, ...errors },
      },
    },
    async (request) => {
      const couponId = Number(request.params.couponId)
      const { codes: json, generate } = request.body
      const given = csvCodes.get(request) ?? json
      if ((given === undefined) === (generate === undefined))
        throw new AppError('VALIDATION_FAILED', 'give either codes or generate')
      const total = await codes.add(
        couponId,
        given === undefined ? { generate: generate as number } : { codes: given },
      )
      return { codes: total }
    },
  )

  app.get(
    '/v1/coupons/:couponId/codes',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: 'How many partner codes a coupon holds',
        security: routeSecurity.admin,
        params: CouponIdParams,
        response: { 200: CodeCountOut, ...errors },
      },
    },
    async (request) => {
      const couponId = Number(request.params.couponId)
      return { codes: await codes.count(couponId) }
    },
  )

  app.get(
    '/v1/coupons/:couponId/issues.csv',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: "The winners' export: every win by rank, QUEUED ones included, as CSV",
        description:
          "`rank,userId,state,issuedAt,usedAt,orderId,code` (RFC 4180, CRLF), streamed. A text value beginning with = + - @, a tab, a carriage return or an apostrophe is written with one more apostrophe in front (a spreadsheet's formula guard): take one leading apostrophe off to read the value.",
        security: routeSecurity.admin,
        params: CouponIdParams,
        produces: ['text/csv'],
        response: {
          200: {
            description: 'the CSV file (Content-Disposition: attachment)',
            content: { 'text/csv': { schema: { type: 'string' } } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const couponId = Number(request.params.couponId)
      const batches = await winners.open(couponId)
      reply.raw.setTimeout(EXPORT_IDLE_MS, () => reply.raw.destroy())
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="coupon-${couponId}-winners.csv"`)
        .header('cache-control', 'no-store')
        .send(winnersCsv(batches))
    },
  )
}
