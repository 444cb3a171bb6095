/**
 * `firstcome worker`'s own small HTTP server (METRICS_PORT): /metrics, /healthz
 * and /readyz, so a worker's batches, lag and errors can be scraped and its
 * health probed like an API process's.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import { healthRoutes } from './health-routes.js'
import type { Metrics } from './metrics.js'
import type { Readiness } from './readiness.js'

export interface WorkerServerOptions {
  metrics: Metrics
  readiness: Readiness
  accepting: () => boolean
  logger: FastifyBaseLogger
}

export async function startWorkerServer(
  o: WorkerServerOptions,
  port: number,
  host: string,
): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({
    loggerInstance: o.logger,
    // Fastify's own option, not the deprecated top-level one (FSTDEP023 at every start).
    logController: new LogController({ disableRequestLogging: true }),
  })
  await app.register(healthRoutes, o)
  o.metrics.watchReadiness(o.readiness)
  await app.listen({ port, host })
  const address = app.server.address()
  const bound = typeof address === 'object' && address ? address.port : port
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host
  return { app, url: `http://${shown}:${bound}` }
}
