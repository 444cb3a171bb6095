/**
 * buildApp(deps) → a Fastify instance with every route, not listening. The
 * composition root (container.ts) builds the deps; tests build their own and use
 * `app.inject()` or `listen({ port: 0 })`.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { HttpLimits } from './config.js'
import { eventPageRoutes } from './event-page/event-page-routes.js'
import type { UserVerifier } from './http/auth.js'
import { codeRoutes } from './http/code-routes.js'
import { compatRoutes } from './http/compat-routes.js'
import { couponRoutes } from './http/coupon-routes.js'
import { dashboardRoutes } from './http/dashboard-routes.js'
import { drawRoutes } from './http/draw-routes.js'
import {
  frameworkError,
  RETRY_AFTER_SECONDS,
  registerErrorHandling,
  SHUTTING_DOWN,
} from './http/errors.js'
import { type EventRoutesOptions, eventRoutes, webhookOverview } from './http/event-routes.js'
import { COMPAT_ROUTES, ISSUE_ROUTE } from './http/issue-endpoint.js'
import { IssueFastLane } from './http/issue-fast-lane.js'
import { IssuePipeline } from './http/issue-pipeline.js'
import { issueRoutes } from './http/issue-routes.js'
import { Overload } from './http/overload.js'
import { clientError, serverFactory } from './http/server.js'
import { useRoutes } from './http/use-routes.js'
import type { IssueLimits } from './limits/issue-limits.js'
import type { ApiFleet } from './ops/api-fleet.js'
import type { CouponFigures } from './ops/coupon-figures.js'
import { healthRoutes } from './ops/health-routes.js'
import type { Metrics } from './ops/metrics.js'
import { Overview } from './ops/overview.js'
import type { Readiness } from './ops/readiness.js'
import type { CodePool } from './service/code-pool.js'
import type { CouponBox } from './service/coupon-box.js'
import type { CouponService } from './service/coupon-service.js'
import type { DrawRecords } from './service/draw-records.js'
import type { IssueService } from './service/issue-service.js'
import type { SpendService } from './service/spend-service.js'
import type { WinnersExport } from './service/winners-export.js'

export interface AppDeps {
  coupons: CouponService
  issues: IssueService
  spends: SpendService
  box: CouponBox
  codes: CodePool
  winners: WinnersExport
  /** the opening draws' public records (absent: no draw routes) */
  draws?: DrawRecords
  metrics: Metrics
  readiness: Readiness
  /** the dashboard's coupon figures (cached a second) */
  figures: CouponFigures
  workersAlive?: (() => Promise<number>) | undefined
  /** every live API process's figures, for the dashboard */
  fleet: ApiFleet
  mode: 'embedded' | 'redis'
  adminToken: string
  /** SERVICE_TOKEN: may spend, give back and list any user's coupons; null: none */
  serviceToken: string | null
  verifyUser: UserVerifier | null
  /** RATE_LIMIT_PER_IP and RATE_LIMIT_PER_USER */
  limits: IssueLimits
  http: HttpLimits
  trustProxy?: boolean
  logger?: FastifyBaseLogger
  /** the events feed and webhooks; none: their routes are absent */
  events?: Omit<EventRoutesOptions, 'adminToken'> | undefined
  /** the clock that judges the issue window, shown to the event page (default: this process's) */
  now?: () => number | Promise<number>
}

/** Request bodies are small JSON objects; anything bigger is refused unread. */
export const BODY_LIMIT_BYTES = 16 * 1024

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // The one shutdown flag: set once close() has begun; readiness says so and every
  // request is refused (the issue routes by the issue pipeline).
  let closing = false
  const isClosing = () => closing
  const overload = new Overload(deps.http.queueTimeoutMs, (reason) =>
    deps.metrics.countShed(reason),
  )
  // Every issue request's steps, whichever transport carries it (issue-pipeline.ts).
  const pipeline = new IssuePipeline({
    issues: deps.issues,
    verifyUser: deps.verifyUser,
    limits: deps.limits,
    overload,
    closing: isClosing,
  })
  // The issue routes' common case skips Fastify's lifecycle (see issue-fast-lane.ts).
  const lane = new IssueFastLane({
    pipeline,
    metrics: deps.metrics,
    bodyLimit: BODY_LIMIT_BYTES,
    closing: isClosing,
    trustProxy: deps.trustProxy ?? false,
  })
  const app = Fastify({
    serverFactory: serverFactory(lane, deps.http),
    clientErrorHandler: clientError,
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
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  // The app's own per-request hooks: the fast lane does what they do on its routes.
  lane.watch(app, () => {
    refuseWhileClosing(app, isClosing, new Set([ISSUE_ROUTE, ...COMPAT_ROUTES]))
    observeRequests(app, deps.metrics)
  })
  overload.register(app)

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
          serviceToken: {
            type: 'http',
            scheme: 'bearer',
            description: "SERVICE_TOKEN: the shop's backends (spend, give back, the coupon box)",
          },
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

  await app.register(couponRoutes, { coupons: deps.coupons, adminToken: deps.adminToken })
  if (deps.draws) await app.register(drawRoutes, { draws: deps.draws, adminToken: deps.adminToken })
  // The issue routes, native and compat, in the lane's scope: no hook it cannot see.
  await app.register(
    lane.scope(async (scope) => {
      const typed = scope.withTypeProvider<TypeBoxTypeProvider>()
      await issueRoutes(typed, {
        issues: deps.issues,
        adminToken: deps.adminToken,
        serviceToken: deps.serviceToken,
        verifyUser: deps.verifyUser,
        pipeline,
      })
      await compatRoutes(typed, { pipeline, userAuth: deps.verifyUser !== null })
    }),
  )
  await app.register(useRoutes, {
    spends: deps.spends,
    box: deps.box,
    adminToken: deps.adminToken,
    serviceToken: deps.serviceToken,
    verifyUser: deps.verifyUser,
  })
  await app.register(codeRoutes, {
    codes: deps.codes,
    winners: deps.winners,
    adminToken: deps.adminToken,
  })
  await app.register(healthRoutes, {
    readiness: deps.readiness,
    metrics: deps.metrics,
    accepting: () => !closing,
  })
  await app.register(dashboardRoutes, {
    overview: new Overview({
      figures: deps.figures,
      readiness: deps.readiness,
      processes: () => deps.fleet.shares(),
      workersAlive: deps.workersAlive,
      mode: deps.mode,
      webhooks: deps.events && webhookOverview(deps.events.statuses),
    }),
    adminToken: deps.adminToken,
  })
  if (deps.events) await app.register(eventRoutes, { ...deps.events, adminToken: deps.adminToken })
  await app.register(eventPageRoutes, { now: deps.now ?? Date.now })
  lane.attach(app)
  deps.metrics.watchConnections(app.server)
  deps.metrics.watchReadiness(deps.readiness)
  return app
}

/**
 * Once close() has begun, requests still arriving on kept-alive connections get a
 * 503 UNAVAILABLE (Fastify sets `Connection: close` on them), so clients retry
 * elsewhere; requests already in flight finish normally. Fastify's built-in 503
 * for this has a body of another shape. The issue routes (`pipelined`) are the
 * issue pipeline's to refuse, each in its own shape.
 */
function refuseWhileClosing(
  app: FastifyInstance,
  closing: () => boolean,
  pipelined: ReadonlySet<string>,
) {
  app.addHook('onRequest', (request, reply, done) => {
    if (!closing() || pipelined.has(request.routeOptions.url ?? '')) return done()
    reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send(SHUTTING_DOWN)
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
