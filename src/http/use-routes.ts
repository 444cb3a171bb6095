/**
 * After the win: spend a coupon on an order, give it back when the order is
 * cancelled, and the user's coupon box. Callers: see `spenderGuard` (checked
 * before the body is read).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { CouponBox } from '../service/coupon-box.js'
import type { SpendService } from '../service/spend-service.js'
import { routeSecurity, type SpenderTokens, spenderGuard } from './auth.js'
import {
  CancelQuery,
  CouponBoxOut,
  ErrorBody,
  IssueParams,
  IssueStatusOut,
  UseBody,
  UseOut,
  UserParams,
} from './schemas.js'

export interface UseRoutesOptions extends SpenderTokens {
  spends: SpendService
  box: CouponBox
}

const errors = { '4xx': ErrorBody, '5xx': ErrorBody }

export const useRoutes: FastifyPluginAsyncTypebox<UseRoutesOptions> = async (app, opts) => {
  const { spends, box } = opts
  const onRequest = spenderGuard(opts)
  const security = routeSecurity.spender(opts.verifyUser !== null)

  app.post(
    '/v1/coupons/:couponId/issues/:userId/use',
    {
      onRequest,
      schema: {
        tags: ['public'],
        summary: "Spend the user's coupon on an order",
        description:
          'The same orderId again answers as the first time. 404 COUPON_NOT_FOUND / NOT_ISSUED, 409 ALREADY_USED (spent on another order), 422 ORDER_BELOW_MINIMUM (orderAmount < minAvailableAmount). A win still QUEUED can be spent.',
        security,
        params: IssueParams,
        body: UseBody,
        response: { 200: UseOut, ...errors },
      },
    },
    async (request) => {
      const { couponId, userId } = request.params
      const { orderId, orderAmount } = request.body
      return spends.use(Number(couponId), userId, orderId, orderAmount)
    },
  )

  app.delete(
    '/v1/coupons/:couponId/issues/:userId/use',
    {
      onRequest,
      schema: {
        tags: ['public'],
        summary: 'The order was cancelled: the coupon is ISSUED again',
        description:
          "Answers the user's coupon. Nothing to undo (not used) is 200 too; 409 USED_BY_ANOTHER_ORDER when another order holds the coupon (nothing changes).",
        security,
        params: IssueParams,
        querystring: CancelQuery,
        response: { 200: IssueStatusOut, ...errors },
      },
    },
    async (request) => {
      const { couponId, userId } = request.params
      return spends.cancel(Number(couponId), userId, request.query.orderId)
    },
  )

  app.get(
    '/v1/users/:userId/coupons',
    {
      onRequest,
      schema: {
        tags: ['public'],
        summary: "The user's coupons, newest first (QUEUED wins included)",
        security,
        params: UserParams,
        response: { 200: CouponBoxOut, ...errors },
      },
    },
    async (request) => {
      const { userId } = request.params
      return { items: await box.list(userId) }
    },
  )
}
