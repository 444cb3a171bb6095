/**
 * The dashboard: the page at `/` (static, no build step, nothing from a CDN), its
 * icon, and the one admin-only snapshot it polls, GET /v1/admin/overview.
 */
import { readFileSync } from 'node:fs'
import type { FastifyPluginAsync } from 'fastify'
import type { Overview } from '../ops/overview.js'
import { adminGuard, routeSecurity } from './auth.js'

const page = readFileSync(new URL('./dashboard.html', import.meta.url))
/** A bolt on the page's blue: browsers take an SVG under the icon's usual name. */
const ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2d6cdf"/><path d="M18 4 7 18h7l-2 10 12-15h-7z" fill="#fff"/></svg>'

export interface DashboardRoutesOptions {
  overview: Overview
  adminToken: string
}

export const dashboardRoutes: FastifyPluginAsync<DashboardRoutesOptions> = async (app, opts) => {
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page),
  )
  app.get('/favicon.ico', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(ICON),
  )
  app.get(
    '/v1/admin/overview',
    {
      onRequest: adminGuard(opts.adminToken),
      schema: {
        tags: ['admin'],
        summary: "The dashboard's snapshot: coupons, outcomes, latency and health",
        security: routeSecurity.admin,
      },
    },
    async (_request, reply) => {
      // JSON.stringify: the +Inf bucket bound becomes null, which the page reads as such.
      const snapshot = await opts.overview.get()
      return reply.header('cache-control', 'no-store').send(snapshot)
    },
  )
}
