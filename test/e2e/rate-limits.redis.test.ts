/**
 * RATE_LIMIT_PER_IP and RATE_LIMIT_PER_USER in Redis mode hold for the whole
 * deployment: two `serve` processes count a client's and a user's issue requests
 * as one, on the fast lane and through Fastify alike.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { type ServerProcess, serversOnOneDatabase } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'

const PER_IP = 5
const PER_USER = 2
/** a case must run within one limit window to prove anything; else it runs again */
const WINDOW_MS = 1000
const ATTEMPTS = 5

interface Answer {
  status: number
  code: string | undefined
  retryAfter: string | null
}

async function issue(server: ServerProcess, couponId: number, userId: string, ip: string) {
  const res = await fetch(`${server.url}/v1/coupons/${couponId}/issues`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
    body: JSON.stringify({ userId }),
  })
  const body = (await res.json()) as { code?: string }
  return { status: res.status, code: body.code, retryAfter: res.headers.get('retry-after') }
}

/** Runs `attempt` (with its number) until it ran within one window. */
async function withinOneWindow<T>(attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    const started = performance.now()
    const result = await attempt(n)
    if (performance.now() - started < WINDOW_MS * 0.8 || n === ATTEMPTS - 1) return result
  }
}

describe('rate limits across API processes (Redis mode)', {
  skip: await skipUnless('redis'),
}, () => {
  const prefix = uniquePrefix()
  const servers = serversOnOneDatabase()
  let a: ServerProcess
  let b: ServerProcess
  let couponId: number
  before(async () => {
    const env = {
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      RATE_LIMIT_PER_IP: String(PER_IP),
      RATE_LIMIT_PER_USER: String(PER_USER),
      TRUST_PROXY: 'true',
    }
    a = await servers.start({ adminToken: ADMIN_TOKEN, env })
    b = await servers.start({ adminToken: ADMIN_TOKEN, env })
    couponId = await createCoupon(a, { totalQuantity: 10_000 })
  })
  after(async () => {
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
  })

  it('counts a client over both processes as one', async () => {
    const answers = await withinOneWindow(async (n) => {
      const ip = `10.7.${n}.1`
      const first = await Promise.all(
        Array.from({ length: PER_IP }, (_, i) => issue(a, couponId, `ip${n}-${i}`, ip)),
      )
      const second = await issue(b, couponId, `ip${n}-x`, ip)
      return [...first, second]
    })
    assert.deepEqual(
      answers.map((x: Answer) => x.status),
      [...Array(PER_IP).fill(201), 429],
    )
    const over = answers.at(-1)
    assert.equal(over?.code, 'RATE_LIMITED')
    assert.equal(over?.retryAfter, '1')
  })

  it('counts a user over both processes and clients as one', async () => {
    const answers = await withinOneWindow(async (n) => {
      const user = `user-${n}`
      return [
        await issue(a, couponId, user, `10.8.${n}.1`),
        await issue(b, couponId, user, `10.8.${n}.2`),
        await issue(a, couponId, user, `10.8.${n}.3`),
        await issue(b, couponId, user, `10.8.${n}.4`),
      ]
    })
    assert.deepEqual(
      answers.map((x) => `${x.status} ${x.code ?? ''}`.trim()),
      ['201', '409 ALREADY_ISSUED', '429 RATE_LIMITED', '429 RATE_LIMITED'],
    )
  })
})
