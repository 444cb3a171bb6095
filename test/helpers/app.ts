/**
 * A whole service (container + Fastify app) on a database of its own, for
 * integration tests: `inject()` for most, `listen()` for real-socket storms.
 */
import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { type Container, createContainer } from '../../src/container.js'
import { createDatabaseUrl, dropDatabaseUrl } from './databases.js'

export const ADMIN_TOKEN = 'test-admin-token-0123456789'
export const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }

export interface TestApp {
  app: FastifyInstance
  container: Container
  /** Base URL once `listen()` has run. */
  url: string
  listen(): Promise<string>
  close(): Promise<void>
}

export interface TestAppOptions {
  /** extra environment for loadConfig (REDIS_URL, JWT_SECRET, …) */
  env?: Record<string, string>
  /** an existing database to use (not dropped on close) */
  databaseUrl?: string
}

export async function startApp(options: TestAppOptions = {}): Promise<TestApp> {
  const ownDatabase = options.databaseUrl === undefined
  const databaseUrl = options.databaseUrl ?? (await createDatabaseUrl('sqlite'))
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    ADMIN_TOKEN,
    LOG_LEVEL: 'silent',
    ...options.env,
  })
  const container = await createContainer(config, pino({ level: 'silent' }))
  const app = await buildApp({
    coupons: container.coupons,
    issues: container.issues,
    metrics: container.metrics,
    checks: container.checks,
    adminToken: config.adminToken,
    verifyUser: container.verifyUser,
    rateLimitPerIp: config.rateLimitPerIp,
  })
  const t: TestApp = {
    app,
    container,
    url: '',
    async listen() {
      await app.listen({ port: 0, host: '127.0.0.1', backlog: 8192 })
      const address = app.server.address()
      if (!address || typeof address === 'string') throw new Error('no address')
      t.url = `http://127.0.0.1:${address.port}`
      return t.url
    },
    async close() {
      await app.close()
      await container.close()
      if (ownDatabase) await dropDatabaseUrl(databaseUrl)
    },
  }
  return t
}

export interface CouponInput {
  title?: string
  totalQuantity?: number | null
  discountAmount?: number
  minAvailableAmount?: number
  issueStart?: string
  issueEnd?: string
}

export function couponBody(over: CouponInput = {}) {
  const now = Date.now()
  return {
    title: '네고왕',
    totalQuantity: 500,
    discountAmount: 100_000,
    minAvailableAmount: 110_000,
    issueStart: new Date(now - 60_000).toISOString(),
    issueEnd: new Date(now + 3_600_000).toISOString(),
    ...over,
  }
}

/** Creates a coupon through the admin API and returns its id. */
export async function createCoupon(app: FastifyInstance, over: CouponInput = {}): Promise<number> {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/coupons',
    headers: admin,
    payload: couponBody(over),
  })
  if (res.statusCode !== 201) throw new Error(`create coupon: ${res.statusCode} ${res.body}`)
  return res.json().id
}
