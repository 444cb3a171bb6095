/**
 * A whole service (container + Fastify app) on a database of its own, for
 * integration tests: `inject()` for most, `listen()` for real-socket storms.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, InjectOptions } from 'fastify'
import pino, { type Logger } from 'pino'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { type Container, createContainer } from '../../src/container.js'
import { createDatabaseUrl, dropDatabaseUrl } from './databases.js'

export const ADMIN_TOKEN = 'test-admin-token-0123456789'
export const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
/** SERVICE_TOKEN of every service a test starts: the shop backends' token for spending */
export const SERVICE_TOKEN = 'test-service-token-9876543210'
export const service = { authorization: `Bearer ${SERVICE_TOKEN}` }

export interface TestApp {
  app: FastifyInstance
  container: Container
  /** Base URL once `listen()` has run. */
  url: string
  listen(): Promise<string>
  /** Redis mode: starts the stream worker in this process, unless it runs. */
  startWorker(): Promise<void>
  stopWorker(): Promise<void>
  /** Stops the worker, closes the app and the container, drops an own database. */
  close(): Promise<void>
}

export interface TestAppOptions {
  /** extra environment for loadConfig (REDIS_URL, JWT_SECRET, …) */
  env?: Record<string, string>
  /** an existing database to use (not dropped on close) */
  databaseUrl?: string
  /** where the service logs (default: nowhere) */
  logger?: Logger
}

export async function startApp(options: TestAppOptions = {}): Promise<TestApp> {
  const ownDatabase = options.databaseUrl === undefined
  const databaseUrl = options.databaseUrl ?? (await createDatabaseUrl('sqlite'))
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    ADMIN_TOKEN,
    SERVICE_TOKEN,
    LOG_LEVEL: 'silent',
    // Storms on a shared test machine assert exact answers; shedding under load is
    // test/e2e/overload.test.ts's to prove.
    QUEUE_TIMEOUT_MS: '0',
    ...options.env,
  })
  const logger = options.logger ?? pino({ level: 'silent' })
  const container = await createContainer(config, logger)
  const app = await buildApp(container, options.logger)
  container.fleet.start() // as `serve` does: the dashboard counts this process
  let worker: { stop(): Promise<void> } | null = null
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
    async startWorker() {
      if (worker) return
      if (!container.startWorker) throw new Error('no stream worker: not in Redis mode')
      worker = await container.startWorker()
    },
    async stopWorker() {
      const running = worker
      worker = null
      await running?.stop()
    },
    async close() {
      await t.stopWorker()
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
  drawAt?: string | null
}

export const HOUR = 3_600_000
/** How the API writes an instant: ISO 8601 in UTC, with milliseconds. */
export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
export const iso = (ms: number) => new Date(ms).toISOString()

/** A valid create body: open from a minute ago for an hour. */
export function couponBody(over: CouponInput = {}) {
  const now = Date.now()
  return {
    title: '네고왕',
    totalQuantity: 500,
    discountAmount: 100_000,
    minAvailableAmount: 110_000,
    issueStart: iso(now - 60_000),
    issueEnd: iso(now + HOUR),
    ...over,
  }
}

/**
 * Creates a coupon through the admin API — of an app in this process, or of a
 * server process (started with ADMIN_TOKEN) at its URL — and returns its id.
 */
export async function createCoupon(
  via: FastifyInstance | { url: string },
  over: CouponInput = {},
): Promise<number> {
  const headers = { ...admin, 'content-type': 'application/json' }
  const body = JSON.stringify(couponBody(over))
  const created = (status: number, text: string) => {
    if (status !== 201) throw new Error(`create coupon: ${status} ${text}`)
    return (JSON.parse(text) as { id: number }).id
  }
  if ('inject' in via) {
    const res = await via.inject({ method: 'POST', url: '/v1/coupons', headers, payload: body })
    return created(res.statusCode, res.body)
  }
  const res = await fetch(`${via.url}/v1/coupons`, { method: 'POST', headers, body })
  return created(res.status, await res.text())
}

/**
 * createCoupon, answered 503 ("retry shortly") retried as an admin would: up to
 * `attempts` tries, `pauseMs` apart. For tests whose coupon is made while the
 * service is busy with something else (a failover, a process starting).
 */
export async function createCouponRetrying(
  via: FastifyInstance | { url: string },
  over: CouponInput,
  { attempts, pauseMs }: { attempts: number; pauseMs: number },
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createCoupon(via, over)
    } catch (err) {
      if (attempt >= attempts || !(err as Error).message.startsWith('create coupon: 503 '))
        throw err
      await sleep(pauseMs)
    }
  }
}

/** `POST /v1/coupons/{couponId}/issues` with `{userId}`, through inject. */
export function requestIssue(
  app: FastifyInstance,
  couponId: number,
  userId: unknown,
  options: Pick<InjectOptions, 'remoteAddress'> = {},
) {
  return app.inject({
    method: 'POST',
    url: `/v1/coupons/${couponId}/issues`,
    payload: { userId },
    ...options,
  })
}

/** `PATCH /v1/coupons/{couponId}`, as the admin unless other headers are given. */
export function patchCoupon(
  app: FastifyInstance,
  couponId: number,
  payload: Record<string, unknown>,
  headers: Record<string, string> = admin,
) {
  return app.inject({ method: 'PATCH', url: `/v1/coupons/${couponId}`, headers, payload })
}

/**
 * Wins through the service's own gate, without HTTP (2,000 at a time); userId →
 * rank. Fails unless every user wins.
 */
export async function winInProcess(
  t: TestApp,
  couponId: number,
  userIds: readonly string[],
): Promise<Map<string, number>> {
  const wins = new Map<string, number>()
  for (let i = 0; i < userIds.length; i += 2000) {
    const chunk = userIds.slice(i, i + 2000)
    const outcomes = await Promise.all(chunk.map((u) => t.container.issues.issue(couponId, u)))
    for (const o of outcomes) {
      assert.ok(o.won, `expected a win, got ${o.won ? '' : o.refusal}`)
      wins.set(o.win.userId, o.win.rank)
    }
  }
  return wins
}
