/**
 * buildApp(deps) → a Fastify instance with every route, not listening. The
 * composition root (container.ts) builds the deps; tests build their own and use
 * `app.inject()` or `listen({ port: 0 })`.
 */
import { createServer } from 'node:http'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerFactory,
  LogController,
} from 'fastify'
import type { UserVerifier } from './http/auth.js'
import { compatRoutes } from './http/compat-routes.js'
import { couponRoutes } from './http/coupon-routes.js'
import { frameworkError, RETRY_AFTER_SECONDS, registerErrorHandling } from './http/errors.js'
import { IssueFastLane } from './http/issue-fast-lane.js'
import { type IssueRateLimit, issueRoutes } from './http/issue-routes.js'
import { useRoutes } from './http/use-routes.js'
import { dashboardRoutes } from './ops/dashboard-routes.js'
import { healthRoutes, type ReadinessChecks } from './ops/health-routes.js'
import type { Metrics } from './ops/metrics.js'
import type { CouponBox } from './service/coupon-box.js'
import type { CouponService } from './service/coupon-service.js'
import type { IssueService } from './service/issue-service.js'
import type { SpendService } from './service/spend-service.js'

export interface AppDeps {
  coupons: CouponService
  issues: IssueService
  spends: SpendService
  box: CouponBox
  metrics: Metrics
  checks: ReadinessChecks
  adminToken: string
  verifyUser: UserVerifier | null
  rateLimitPerIp: number | null
  trustProxy?: boolean
  logger?: FastifyBaseLogger
  /** false once shutdown has begun */
  accepting?: () => boolean
}

/** Request bodies are small JSON objects; anything bigger is refused unread. */
export const BODY_LIMIT_BYTES = 16 * 1024

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // The issue routes' common case skips Fastify's lifecycle (see issue-fast-lane.ts).
  // Not with the rate limit on: the limiter is a Fastify hook every issue must pass.
  const lane = deps.rateLimitPerIp
    ? null
    : new IssueFastLane({
        issues: deps.issues,
        metrics: deps.metrics,
        verifyUser: deps.verifyUser,
        bodyLimit: BODY_LIMIT_BYTES,
      })
  const app = Fastify({
    ...(lane && { serverFactory: laneServer(lane) }),
    loggerInstance: deps.logger,
    // No per-request log lines: the issue path is hot; /metrics has the counts.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: deps.trustProxy ?? false,
    frameworkErrors: frameworkError,
    // Answered in our shape by refuseWhileClosing below.
    return503OnClosing: false,
    ajv: {
      // Unknown fields are errors, and "5" is not 5: never mutate a body into validity.
      customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false },
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  // JSON only: text/plain bodies get 415 like any other non-JSON type.
  app.removeContentTypeParser('text/plain')
  registerErrorHandling(app)
  refuseWhileClosing(app)
  observeRequests(app, deps.metrics)

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'firstcome',
        version: '1',
        description:
          'First-come-first-served coupon issuance. Errors are `{code, message}`; see each route for its codes.',
      },
      components: {
        securitySchemes: {
          adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
          userToken: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'user JWT; the user is `sub`',
          },
        },
      },
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })

  // One limiter, one counter per client IP, shared by every issue route: the limit
  // is per client, not per route (a route's own `config.rateLimit` gets a store of
  // its own, so the four issue routes would each allow the whole limit).
  let issueLimit: IssueRateLimit | null = null
  if (deps.rateLimitPerIp) {
    await app.register(rateLimit, {
      global: false,
      errorResponseBuilder: (_request, context) => ({
        statusCode: 429,
        code: 'RATE_LIMITED',
        message: `Too many requests: at most ${context.max} per second per client; retry after ${context.after}.`,
      }),
    })
    issueLimit = app.rateLimit({ max: deps.rateLimitPerIp, timeWindow: 1000 })
  }

  await app.register(couponRoutes, { coupons: deps.coupons, adminToken: deps.adminToken })
  await app.register(issueRoutes, {
    issues: deps.issues,
    verifyUser: deps.verifyUser,
    rateLimit: issueLimit,
  })
  await app.register(useRoutes, {
    spends: deps.spends,
    box: deps.box,
    adminToken: deps.adminToken,
    verifyUser: deps.verifyUser,
  })
  await app.register(compatRoutes, {
    issues: deps.issues,
    verifyUser: deps.verifyUser,
    rateLimit: issueLimit,
  })
  await app.register(healthRoutes, {
    checks: deps.checks,
    metrics: deps.metrics,
    accepting: deps.accepting ?? (() => true),
  })
  await app.register(dashboardRoutes)
  lane?.attach(app)
  return app
}

type ServerTimeout =
  | 'keepAliveTimeout'
  | 'requestTimeout'
  | 'connectionTimeout'
  | 'maxRequestsPerSocket'

/**
 * An HTTP server like the one Fastify makes itself (lib/server.js: the same
 * timeouts), whose requests pass the fast lane first.
 */
function laneServer(lane: IssueFastLane): FastifyServerFactory {
  return (fastify, options) => {
    // Fastify has filled in its defaults by now; its types leave them open.
    const o = options as Partial<Record<ServerTimeout, number>>
    const server = createServer(lane.handler(fastify))
    server.keepAliveTimeout = o.keepAliveTimeout ?? server.keepAliveTimeout
    server.requestTimeout = o.requestTimeout ?? server.requestTimeout
    server.setTimeout(o.connectionTimeout ?? 0)
    if (o.maxRequestsPerSocket) server.maxRequestsPerSocket = o.maxRequestsPerSocket
    return server
  }
}

/**
 * Once close() has begun, requests still arriving on kept-alive connections get a
 * 503 UNAVAILABLE (Fastify sets `Connection: close` on them), so clients retry
 * elsewhere; requests already in flight finish normally. Fastify's built-in 503
 * for this has a body of another shape.
 */
function refuseWhileClosing(app: FastifyInstance) {
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) return done()
    reply
      .code(503)
      .header('retry-after', String(RETRY_AFTER_SECONDS))
      .send({ code: 'UNAVAILABLE', message: 'The server is shutting down; retry shortly.' })
  })
}

/** Request latency by route. */
function observeRequests(app: FastifyInstance, metrics: Metrics) {
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched'
    metrics.requestTimer(request.method, route).observe(reply.statusCode, reply.elapsedTime / 1000)
    done()
  })
}
