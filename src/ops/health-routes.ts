/** Liveness, readiness and Prometheus metrics. */
import type { FastifyPluginAsync } from 'fastify'
import type { Metrics } from './metrics.js'

/** Named readiness checks; each resolves when its backing service answers. */
export type ReadinessChecks = Record<string, () => Promise<void>>

export interface HealthRoutesOptions {
  checks: ReadinessChecks
  metrics: Metrics
  /** false while shutting down: readiness turns 503 so load balancers stop routing here */
  accepting: () => boolean
}

const CHECK_TIMEOUT_MS = 2000

function withTimeout(check: () => Promise<void>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS)
    check()
      .then(
        () => resolve(true),
        () => resolve(false),
      )
      .finally(() => clearTimeout(timer))
  })
}

export const healthRoutes: FastifyPluginAsync<HealthRoutesOptions> = async (app, opts) => {
  const hidden = { hide: true }

  app.get('/healthz', { schema: { ...hidden } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { schema: { ...hidden } }, async (_request, reply) => {
    const names = Object.keys(opts.checks)
    const results = await Promise.all(
      names.map((n) => withTimeout(opts.checks[n] as () => Promise<void>)),
    )
    const down = names.filter((_, i) => !results[i])
    if (!opts.accepting()) down.unshift('shutting down')
    if (down.length === 0)
      return { status: 'ready', checks: Object.fromEntries(names.map((n) => [n, 'up'])) }
    return reply
      .code(503)
      .header('retry-after', '1')
      .send({ code: 'UNAVAILABLE', message: `Not ready: ${down.join(', ')} unavailable.` })
  })

  app.get('/metrics', { schema: { ...hidden } }, async (_request, reply) => {
    const body = await opts.metrics.registry.metrics()
    return reply.type(opts.metrics.registry.contentType).send(body)
  })
}
