/** The live dashboard page at `/`: a static page that polls the public API. */
import { readFileSync } from 'node:fs'
import type { FastifyPluginAsync } from 'fastify'

const page = readFileSync(new URL('./dashboard.html', import.meta.url))

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page),
  )
}
