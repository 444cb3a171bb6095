/** Coupons: admin create / patch / list, public read. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { CouponService } from '../service/coupon-service.js'
import { adminGuard, routeSecurity } from './auth.js'
import {
  CouponIdParams,
  CouponListOut,
  CouponOut,
  CouponViewOut,
  CreateCouponBody,
  ErrorBody,
  PatchCouponBody,
} from './schemas.js'

export interface CouponRoutesOptions {
  coupons: CouponService
  adminToken: string
}

/** `Date` from a schema-validated date-time string. */
const instant = (value: string) => new Date(value)

export const couponRoutes: FastifyPluginAsyncTypebox<CouponRoutesOptions> = async (app, opts) => {
  const { coupons } = opts
  const requireAdmin = adminGuard(opts.adminToken)

  app.post(
    '/v1/coupons',
    {
      onRequest: requireAdmin,
      schema: {
        tags: ['admin'],
        summary: 'Create a coupon',
        security: routeSecurity.admin,
        body: CreateCouponBody,
        response: { 201: CouponOut, '4xx': ErrorBody },
      },
    },
    async (request, reply) => {
      const b = request.body
      const coupon = await coupons.create({
        title: b.title,
        totalQuantity: b.totalQuantity,
        discountAmount: b.discountAmount,
        minAvailableAmount: b.minAvailableAmount,
        issueStart: instant(b.issueStart),
        issueEnd: instant(b.issueEnd),
        drawAt: b.drawAt == null ? null : instant(b.drawAt),
      })
      return reply.code(201).send(coupon)
    },
  )

  app.patch(
    '/v1/coupons/:couponId',
    {
      onRequest: requireAdmin,
      schema: {
        tags: ['admin'],
        summary: 'Change a coupon; takes effect for the next request on every node',
        security: routeSecurity.admin,
        params: CouponIdParams,
        body: PatchCouponBody,
        response: { 200: CouponOut, '4xx': ErrorBody },
      },
    },
    async (request) => {
      const b = request.body
      return coupons.patch(Number(request.params.couponId), {
        title: b.title,
        totalQuantity: b.totalQuantity,
        discountAmount: b.discountAmount,
        minAvailableAmount: b.minAvailableAmount,
        issueStart: b.issueStart === undefined ? undefined : instant(b.issueStart),
        issueEnd: b.issueEnd === undefined ? undefined : instant(b.issueEnd),
        drawAt: b.drawAt === undefined ? undefined : b.drawAt === null ? null : instant(b.drawAt),
      })
    },
  )

  app.get(
    '/v1/coupons',
    {
      onRequest: requireAdmin,
      schema: {
        tags: ['admin'],
        summary: 'List coupons',
        security: routeSecurity.admin,
        response: { 200: CouponListOut, '4xx': ErrorBody },
      },
    },
    async () => ({ items: await coupons.list() }),
  )

  app.get(
    '/v1/coupons/:couponId',
    {
      schema: {
        tags: ['public'],
        security: routeSecurity.public,
        summary: 'Read a coupon, with the quantity left to win',
        params: CouponIdParams,
        response: { 200: CouponViewOut, '4xx': ErrorBody },
      },
    },
    async (request) => coupons.get(Number(request.params.couponId)),
  )
}
