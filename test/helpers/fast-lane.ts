/**
 * Comparing the issue fast lane with Fastify: each request goes once over a real
 * socket (the lane takes what it can, hands the rest to Fastify) and once through
 * `app.inject()` (Fastify alone), to two coupons set up alike. Status, body and
 * every header but the hop-by-hop ones must match, and each answer must come from
 * the transport the case expects, as the lane's metric counts it
 * (`firstcome_issue_fast_lane_answers_total`): a lane that stood aside fails.
 */
import assert from 'node:assert/strict'
import type { Readable } from 'node:stream'
import { request } from 'undici'
import type { TestApp } from './app.js'
import { metricValue } from './metrics.js'

export const JSON_TYPE = { 'content-type': 'application/json' }

export interface Req {
  /** the path, with `{c}` for the coupon under test */
  path?: string
  body?: string | (() => Readable)
  headers?: Record<string, string>
  /**
   * who answers it over a socket: the fast lane (the default), or Fastify (the
   * lane did not take it, or handed its body over); through inject() always Fastify
   */
  via?: Transport
}

export type Transport = 'lane' | 'fastify'

/** The answers the fast lane has given so far, as /metrics counts them. */
export const laneAnswers = (t: TestApp): Promise<number> =>
  metricValue(t.container.metrics.fastLane)

/** Runs `send` and tells which transport answered it. */
export async function answeredBy<T>(
  t: TestApp,
  send: () => Promise<T>,
): Promise<{ seen: T; via: Transport }> {
  const before = await laneAnswers(t)
  const seen = await send()
  const lane = (await laneAnswers(t)) - before
  assert.ok(lane === 0 || lane === 1, `one request, ${lane} lane answers`)
  return { seen, via: lane === 1 ? 'lane' : 'fastify' }
}

/** The requests, each to be answered by Fastify. */
export const viaFastify = (requests: Req[]): Req[] =>
  requests.map((r) => ({ ...r, via: 'fastify' }))

export interface Seen {
  status: number
  body: string
  contentType: string | undefined
  retryAfter: string | undefined
  /** every header but the hop-by-hop ones, by lower-case name */
  headers: Record<string, string>
}

/** Headers of the connection rather than the answer: they differ between a socket and inject(). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'date',
])

function endToEnd(headers: Record<string, string | string[] | number | undefined>) {
  const kept: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name.toLowerCase())) continue
    kept[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return kept
}

/** Asserts two answers carry the same headers, hop-by-hop ones aside. */
export function assertSameHeaders(socket: Seen, inject: Seen, what: string): void {
  assert.deepEqual(socket.headers, inject.headers, `headers of ${what}`)
}

export async function viaSocket(t: TestApp, path: string, req: Req): Promise<Seen> {
  const body = typeof req.body === 'function' ? req.body() : req.body
  const res = await request(`${t.url}${path}`, {
    method: 'POST',
    headers: req.headers ?? JSON_TYPE,
    body,
  })
  return {
    status: res.statusCode,
    body: await res.body.text(),
    contentType: res.headers['content-type'] as string | undefined,
    retryAfter: res.headers['retry-after'] as string | undefined,
    headers: endToEnd(res.headers),
  }
}

export async function viaInject(t: TestApp, path: string, req: Req): Promise<Seen> {
  const res = await t.app.inject({
    method: 'POST',
    url: path,
    headers: req.headers ?? JSON_TYPE,
    payload: typeof req.body === 'function' ? req.body() : req.body,
  })
  return {
    status: res.statusCode,
    body: res.body,
    contentType: res.headers['content-type'] as string | undefined,
    retryAfter: res.headers['retry-after'] as string | undefined,
    headers: endToEnd(res.headers),
  }
}

const withoutLength = (x: Seen): Seen => {
  const { 'content-length': length, ...headers } = x.headers
  return { ...x, headers: { ...headers, 'content-length': length === undefined ? '-' : 'n' } }
}

const couponIdsAway = (body: string, id: number) =>
  body.replaceAll(`"couponId":${id}`, '"couponId":"C"').replaceAll(`/coupons/${id}/`, '/coupons/C/')

/**
 * Runs the requests in order against a socket coupon and an inject coupon made by
 * `make`, and asserts each pair of answers is the same. `{c}` in a path or a body
 * is the coupon's id.
 */
export async function sameAnswers(
  t: TestApp,
  make: () => Promise<number>,
  requests: Req[],
): Promise<{ answers: Seen[]; coupons: number[] }> {
  const coupons = [await make(), await make()]
  const [bySocket, byInject] = coupons as [number, number]
  const answers: Seen[] = []
  const forCoupon = (req: Req, id: number): Req => ({
    ...req,
    body: typeof req.body === 'string' ? req.body.replaceAll('{c}', String(id)) : req.body,
  })
  for (const req of requests) {
    const path = req.path ?? '/v1/coupons/{c}/issues'
    const what = `${path} ${typeof req.body === 'string' ? req.body.slice(0, 80) : '(stream)'}`
    const socket = await answeredBy(t, () =>
      viaSocket(t, path.replace('{c}', String(bySocket)), forCoupon(req, bySocket)),
    )
    const inject = await answeredBy(t, () =>
      viaInject(t, path.replace('{c}', String(byInject)), forCoupon(req, byInject)),
    )
    assert.equal(socket.via, req.via ?? 'lane', `the transport of ${what} over a socket`)
    assert.equal(inject.via, 'fastify', `the transport of ${what} through inject()`)
    const s = socket.seen
    const i = inject.seen
    assert.equal(s.status, i.status, `status of ${what}`)
    assert.equal(
      couponIdsAway(s.body, bySocket),
      couponIdsAway(i.body, byInject),
      `body of ${what}`,
    )
    // The coupon ids may differ in length: each side's content-length is its body's.
    for (const x of [s, i])
      if (x.headers['content-length'] !== undefined)
        assert.equal(Number(x.headers['content-length']), Buffer.byteLength(x.body), what)
    assertSameHeaders(withoutLength(s), withoutLength(i), what)
    answers.push(s)
  }
  return { answers, coupons }
}

export const issueBody = (userId: unknown) => JSON.stringify({ userId })
export const compat = (userId: unknown, couponId: unknown = '{c}') => ({
  path: '/v2/issue-async',
  body:
    couponId === '{c}'
      ? `{"userId":${JSON.stringify(userId)},"couponId":{c}}`
      : JSON.stringify({ userId, couponId }),
})
