/** Liveness, readiness and Prometheus metrics. */
import type { FastifyPluginAsync } from 'fastify'
import type { Metrics } from './metrics.js'
import type { Readiness } from './readiness.js'

export interface HealthRoutesOptions {
  readiness: Readiness
  metrics: Metrics
  /** false while shutting down: readiness turns 503 so load balancers stop routing here */
  accepting: () => boolean
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, opts) => {
  const hidden = { hide: true }

  app.get('/healthz', { schema: { ...hidden } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { schema: { ...hidden } }, async (_request, reply) => {
    const state = await opts.readiness.state(0)
    const down = Object.keys(state).filter((name) => !state[name])
    if (!opts.accepting()) down.unshift('shutting down')
    if (down.length === 0)
      return {
        status: 'ready',
        checks: Object.fromEntries(Object.keys(state).map((n) => [n, 'up'])),
      }
    return reply
      .code(503)
      .header('retry-after', '1')
      .send({ code: 'UNAVAILABLE', message: `Not ready: ${down.join(', ')} unavailable.` })
  })

  app.get('/metrics', { schema: { ...hidden } }, async (_request, reply) => {
    const registry = await opts.metrics.scrape()
    const body = await registry.metrics()
    return reply.type(registry.contentType).send(body)
  })
}
