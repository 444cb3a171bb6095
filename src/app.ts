/**
 * buildApp(container) → a Fastify instance with every route, not listening. The
 * composition root (container.ts) builds everything it registers, the HTTP API's
 * parts included (`container.api`); tests use `app.inject()` or
 * `listen({ port: 0 })`.
 */
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Container } from './container.js'
import { eventPageRoutes } from './event-page/event-page-routes.js'
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
import { eventRoutes } from './http/event-routes.js'
import { COMPAT_ROUTES, ISSUE_ROUTE } from './http/issue-endpoint.js'
import { issueRoutes } from './http/issue-routes.js'
import { BODY_LIMIT_BYTES, clientError, serverFactory } from './http/server.js'
import { useRoutes } from './http/use-routes.js'
import { healthRoutes } from './ops/health-routes.js'
import type { Metrics } from './ops/metrics.js'

/** What the app registers: a container's services and HTTP parts (`api`). */
export type AppDeps = Pick<
  Container,
  | 'config'
  | 'api'
  | 'coupons'
  | 'issues'
  | 'spends'
  | 'box'
  | 'codes'
  | 'winners'
  | 'drawRecords'
  | 'metrics'
  | 'readiness'
  | 'database'
  | 'feedSignal'
  | 'webhookStatuses'
  | 'gateNow'
  | 'verifyUser'
>

/** The app of a container (one app per container: it owns `container.api`). */
export async function buildApp(
  deps: AppDeps,
  logger?: FastifyBaseLogger,
): Promise<FastifyInstance> {
  const { config, metrics, readiness, verifyUser } = deps
  const { adminToken, serviceToken } = config
  // The issue routes' common case skips Fastify's lifecycle (see issue-fast-lane.ts);
  // every issue request's steps are the pipeline's (issue-pipeline.ts).
  const { shutdown, overload, pipeline, lane, overview } = deps.api
  const app = Fastify({
    serverFactory: serverFactory(lane, config.http),
    clientErrorHandler: clientError,
    loggerInstance: logger,
    // No per-request log lines: the issue path is hot; /metrics has the counts.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // A hop count: the client is that many addresses from the right of
    // X-Forwarded-For, not the leftmost, which the client writes itself.
    trustProxy: config.trustProxy > 0 ? (_address, hop) => hop < config.trustProxy : false,
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
    shutdown.set()
    done()
  })
  // The app's own per-request hooks: the fast lane does what they do on its routes.
  lane.watch(app, () => {
    refuseWhileClosing(app, shutdown.closing, new Set([ISSUE_ROUTE, ...COMPAT_ROUTES]))
    observeRequests(app, metrics)
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

  await app.register(couponRoutes, { coupons: deps.coupons, adminToken })
  await app.register(drawRoutes, { draws: deps.drawRecords, adminToken })
  // The issue routes, native and compat, in the lane's scope: no hook it cannot see.
  await app.register(
    lane.scope(async (scope) => {
      const typed = scope.withTypeProvider<TypeBoxTypeProvider>()
      await issueRoutes(typed, {
        issues: deps.issues,
        adminToken,
        serviceToken,
        verifyUser,
        pipeline,
      })
      await compatRoutes(typed, { pipeline, userAuth: verifyUser !== null })
    }),
  )
  await app.register(useRoutes, {
    spends: deps.spends,
    box: deps.box,
    adminToken,
    serviceToken,
    verifyUser,
  })
  await app.register(codeRoutes, { codes: deps.codes, winners: deps.winners, adminToken })
  await app.register(healthRoutes, {
    readiness,
    metrics,
    accepting: () => !shutdown.closing(),
  })
  await app.register(dashboardRoutes, { overview, adminToken })
  await app.register(eventRoutes, {
    db: deps.database.db,
    signal: deps.feedSignal,
    statuses: deps.webhookStatuses,
    allowedHosts: config.events.allowedHosts,
    adminToken,
  })
  await app.register(eventPageRoutes, { now: deps.gateNow })
  lane.attach(app)
  metrics.watchConnections(app.server)
  metrics.watchReadiness(readiness)
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
