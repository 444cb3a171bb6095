/**
 * Generated requests over a real socket, to every route: admin (with and without
 * the token), public, compatibility and operations, with generated paths, methods,
 * headers, content types and bodies (invalid JSON, huge numbers, unicode,
 * `__proto__`, nesting, strings for numbers, odd percent-encodings, overlong ids).
 *
 * Properties: never a 5xx; every 4xx is `{code, message}` (strings); and nothing
 * changes but what a request that succeeded was meant to change. Issue requests
 * target coupons that cannot be won (sold out, ended, not started), and an admin
 * request with the token may only change a coupon of its own, so the rows, the
 * gate and every other coupon must be as they were.
 *
 * FIRSTCOME_FUZZ_SEED replays a failed run (fast-check prints its seed);
 * FIRSTCOME_FUZZ_RUNS searches longer.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it, type TestContext } from 'node:test'
import fc from 'fast-check'
import type { Pool } from 'undici'
import { ADMIN_TOKEN, createCoupon, HOUR, iso, startApp, type TestApp } from '../helpers/app.js'
import { countIssues } from '../helpers/issue-counts.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { httpPool, waitFor } from '../helpers/storm.js'

const SEED = process.env.FIRSTCOME_FUZZ_SEED ? Number(process.env.FIRSTCOME_FUZZ_SEED) : undefined
/** More runs than CI's, for a longer search. */
const RUNS = process.env.FIRSTCOME_FUZZ_RUNS ? Number(process.env.FIRSTCOME_FUZZ_RUNS) : undefined

interface Coupons {
  /** issue routes aim at these: none can be won */
  closed: number[]
  /** the one coupon an admin request with the token may change */
  patchable: number
}

interface Sent {
  method: string
  path: string
  headers: Record<string, string>
  body?: Buffer
}

interface Seen {
  /** coupons created by a request that succeeded */
  created: Set<number>
  /** how many answers of each status and code, for the log */
  statuses: Map<string, number>
}

// ---- generators -----------------------------------------------------------------

const pct = (s: string) => encodeURIComponent(s)

const oddSegment = fc.oneof(
  fc.constantFrom(
    '0',
    '-1',
    '01',
    '1e3',
    '1.5',
    '0x10',
    '9007199254740993',
    '9007199254740992',
    '9'.repeat(16),
    '9'.repeat(300),
    '%00',
    '%2F',
    '%2e%2e',
    '%E0%A4%A',
    '%C0%AF',
    '%FF',
    '%',
    '%%',
    '%u0041',
    '..',
    '.',
    '__proto__',
    'constructor',
    'null',
    'undefined',
    'NaN',
    'Infinity',
    '+1',
    '1%20',
    pct('１'),
    pct('١'),
  ),
  fc.string({ maxLength: 80, unit: 'grapheme' }).map(pct),
  fc.string({ minLength: 65, maxLength: 400 }).map(pct),
  fc.integer({ min: 1_000_000_000, max: Number.MAX_SAFE_INTEGER }).map(String),
  fc.bigInt({ min: 10n ** 15n, max: 10n ** 40n }).map(String),
)

const userSegment = fc.oneof(fc.constantFrom('u1', '1', 'user.name@x', 'a:b-c_d'), oddSegment)

const query = fc.oneof(
  fc.constant(''),
  fc.constant(''),
  fc.string({ maxLength: 40 }).map((s) => `?${pct(s)}`),
  fc.constantFrom('?', '?a=1&a=2', '?__proto__[x]=1', '?%', '?userId=1', '#frag'),
)

/** Paths of every route, with the ids and the shape around them bent. */
function paths(coupons: Coupons) {
  const couponSegment = fc.oneof(fc.constantFrom(...coupons.closed.map(String)), oddSegment)
  const templated = fc
    .tuple(
      couponSegment,
      userSegment,
      fc.constantFrom(
        (c: string, _u: string) => `/v1/coupons/${c}/issues`,
        (c: string, u: string) => `/v1/coupons/${c}/issues/${u}`,
        (c: string, _u: string) => `/v1/coupons/${c}/stats`,
        (c: string, _u: string) => `/v1/coupons/${c}`,
        (_c: string, _u: string) => '/v1/coupons',
        (_c: string, _u: string) => '/v1/issue',
        (_c: string, _u: string) => '/v1/issue-async',
        (_c: string, _u: string) => '/v2/issue-async',
        (_c: string, _u: string) => '/healthz',
        (_c: string, _u: string) => '/readyz',
        (_c: string, _u: string) => '/metrics',
        (_c: string, _u: string) => '/',
        (c: string, u: string) => `/v1/coupons/${c}/issues/${u}/extra`,
        (c: string, _u: string) => `//v1/coupons/${c}/issues`,
        (c: string, _u: string) => `/v1/coupons/${c}/issues/`,
        (c: string, _u: string) => `/V1/COUPONS/${c}/ISSUES`,
        (c: string, _u: string) => `/v1/coupons/${c}%2Fissues`,
        (c: string, _u: string) => `/v1/coupons/./${c}/../${c}/issues`,
      ),
      query,
    )
    .map(([c, u, route, q]) => `${route(c, u)}${q}`)
  const random = fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`))
  return fc.oneof({ weight: 5, arbitrary: templated }, { weight: 1, arbitrary: random })
}

/** The valid bodies of the JSON routes. */
function validBodies(coupons: Coupons) {
  const now = Date.now()
  return {
    issue: { userId: 'fuzz-user' },
    compat: { userId: 7, couponId: coupons.closed[0] },
    create: {
      title: 'fuzz',
      totalQuantity: 5,
      discountAmount: 1,
      minAvailableAmount: 1,
      issueStart: iso(now + HOUR),
      issueEnd: iso(now + 2 * HOUR),
    },
  }
}

/** One of `valid`, as it is, with one field bent, or replaced altogether. */
function jsonBodies(valid: object[]) {
  const weird = fc.oneof(
    fc.jsonValue(),
    fc.constantFrom(
      -0,
      1e308,
      -1e308,
      2 ** 31,
      2 ** 53,
      0.1,
      '1',
      '',
      ' ',
      'null',
      '2026-02-30T00:00:00Z',
      '2026-01-01T00:00:00',
      '+275760-09-13T00:00:00.001Z',
      '\u0000',
      '\ud800',
      'é'.repeat(300),
      [],
      {},
      { $gt: 0 },
    ),
    fc.string({ unit: 'binary', maxLength: 100 }),
  )
  /** Numbers as they are written, which no JavaScript value stringifies to. */
  const rawNumber = fc.constantFrom(
    '9007199254740993',
    '-9007199254740993',
    '1e400',
    '-1e400',
    '1.0',
    '1e2',
    '5e-324',
    '123456789012345678901234567890',
    '0.99999999999999999999',
  )
  const RAW = '\u0000raw'
  const bent = fc
    .tuple(
      fc.constantFrom(...valid),
      fc.string({ maxLength: 20 }),
      fc.oneof(
        weird,
        rawNumber.map((n) => ({ [RAW]: n })),
      ),
      fc.boolean(),
    )
    .map(([body, key, value, replace]) => {
      const keys = Object.keys(body)
      const field = replace ? (keys[key.length % keys.length] ?? key) : key
      const raw = typeof value === 'object' && value !== null && RAW in value
      const text = JSON.stringify({ ...body, [field]: raw ? RAW : value })
      return raw
        ? text.replace(JSON.stringify(RAW), String((value as Record<string, unknown>)[RAW]))
        : text
    })
  const protoKey = fc
    .tuple(fc.constantFrom(...valid), fc.constantFrom('__proto__', 'constructor', 'prototype'))
    .map(([body, key]) => `{"${key}":{"isAdmin":true,"userId":1},${JSON.stringify(body).slice(1)}`)
  const nested = fc
    .tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('[', '{"a":'))
    .map(([depth, open]) => open.repeat(depth))
  const truncated = fc.tuple(fc.constantFrom(...valid), fc.nat()).map(([body, at]) => {
    const text = JSON.stringify(body)
    return text.slice(0, at % text.length)
  })
  return fc
    .oneof(
      { weight: 4, arbitrary: fc.constantFrom(...valid).map((v) => JSON.stringify(v)) },
      { weight: 4, arbitrary: bent },
      protoKey,
      nested,
      truncated,
      fc.json(),
      fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
      fc.constantFrom(
        '',
        ' ',
        'null',
        '{}',
        '[]',
        '""',
        '{"userId":}',
        '{"userId":1,}',
        '\ufeff{}',
      ),
    )
    .map((text) => Buffer.from(text))
}

const bodies = (coupons: Coupons) =>
  fc.oneof(
    { weight: 6, arbitrary: jsonBodies(Object.values(validBodies(coupons))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.constant(Buffer.alloc(20_000, 0x61)) },
  )

const headerValue = fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, '').trim())

const contentType = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'application/json; charset=utf-16',
    'APPLICATION/JSON',
    'application/json;',
    'application/json ; charset="utf-8"',
    'application/jsonx',
    'application/vnd.api+json',
    'text/plain',
    'text/json',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
    '*/*',
    '',
  ),
  headerValue,
)

const authorization = fc.oneof(
  fc.constant(`Bearer ${ADMIN_TOKEN}`),
  fc.constantFrom(
    'Bearer',
    'Bearer ',
    `bearer ${ADMIN_TOKEN}`,
    `Bearer ${ADMIN_TOKEN} `,
    `Bearer ${ADMIN_TOKEN}x`,
    `Bearer ${ADMIN_TOKEN.slice(0, -1)}`,
    'Basic YWRtaW46YWRtaW4=',
    'Bearer a.b.c',
  ),
  headerValue,
)

const extraHeaders = fc.dictionary(
  fc.constantFrom(
    'accept',
    'accept-encoding',
    'content-encoding',
    'x-forwarded-for',
    'x-request-id',
    'idempotency-key',
    'origin',
    'cookie',
    'x-http-method-override',
  ),
  headerValue,
  { maxKeys: 3 },
)

/** As the server reads the header: the scheme in any case, spaces around trimmed. */
const isAdmin = (authorization: string) =>
  /^bearer (.*)$/i.exec(authorization.trim())?.[1]?.trim() === ADMIN_TOKEN

function requests(coupons: Coupons) {
  return fc
    .record({
      method: fc.constantFrom('GET', 'POST', 'POST', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'),
      path: paths(coupons),
      body: fc.option(bodies(coupons), { nil: undefined, freq: 4 }),
      contentType: fc.option(contentType, { nil: undefined, freq: 5 }),
      authorization: fc.option(authorization, { nil: undefined, freq: 2 }),
      extra: extraHeaders,
    })
    .map(({ method, path, body, contentType, authorization, extra }): Sent => {
      const headers: Record<string, string> = { ...extra }
      if (contentType !== undefined) headers['content-type'] = contentType
      if (authorization !== undefined) headers.authorization = authorization
      // The admin's own coupon is the only one a request with the token may change.
      if (authorization !== undefined && isAdmin(authorization) && method === 'PATCH') {
        path = path.replace(/^\/v1\/coupons\/[^/?#]*/, `/v1/coupons/${coupons.patchable}`)
      }
      const sendsBody = body !== undefined && method !== 'GET' && method !== 'OPTIONS'
      return sendsBody ? { method, path, headers, body } : { method, path, headers }
    })
}

/** Requests of a route's own method, content type and body shape, bent a little. */
function nearlyValid(coupons: Coupons) {
  const valid = validBodies(coupons)
  const closed = fc.constantFrom(...coupons.closed)
  const json = fc.oneof(
    { weight: 4, arbitrary: fc.constant('application/json') },
    { weight: 1, arbitrary: contentType },
  )
  const admin = fc.oneof(
    { weight: 3, arbitrary: fc.constant(`Bearer ${ADMIN_TOKEN}`) },
    { weight: 1, arbitrary: authorization },
  )
  const post = (path: string, type: string, body: Buffer, auth?: string): Sent => ({
    method: 'POST',
    path,
    headers: { 'content-type': type, ...(auth === undefined ? {} : { authorization: auth }) },
    body,
  })
  const patchBody = fc
    .subarray(Object.entries(valid.create), { minLength: 1 })
    .map((entries) => Object.fromEntries(entries))
  return fc.oneof(
    fc
      .tuple(closed, json, jsonBodies([valid.issue]))
      .map(([id, type, body]) => post(`/v1/coupons/${id}/issues`, type, body)),
    fc
      .tuple(
        fc.constantFrom('/v1/issue', '/v1/issue-async', '/v2/issue-async'),
        closed,
        json,
        fc.boolean(),
      )
      .chain(([path, couponId, type]) =>
        jsonBodies([{ ...valid.compat, couponId }]).map((body) => post(path, type, body)),
      ),
    fc
      .tuple(json, jsonBodies([valid.create]), admin)
      .map(([type, body, auth]) => post('/v1/coupons', type, body, auth)),
    fc.tuple(json, patchBody, admin).chain(([type, patch, auth]) =>
      jsonBodies([patch]).map((body) => ({
        ...post(`/v1/coupons/${coupons.patchable}`, type, body, auth),
        method: 'PATCH',
      })),
    ),
    fc
      .tuple(
        closed,
        userSegment,
        fc.constantFrom('issues/', 'stats', ''),
        fc.option(admin, { nil: undefined }),
      )
      .map(
        ([id, user, what, auth]): Sent => ({
          method: 'GET',
          path: `/v1/coupons/${id}${what === '' ? '' : `/${what}`}${what === 'issues/' ? user : ''}`,
          headers: auth === undefined ? {} : { authorization: auth },
        }),
      ),
  )
}

// ---- the checks ------------------------------------------------------------------

async function send(pool: Pool, r: Sent, seen: Seen): Promise<void> {
  const res = await pool.request({
    method: r.method as 'GET',
    path: r.path,
    headers: r.headers,
    body: r.body,
  })
  const text = await res.body.text()
  const label = `${r.method} ${r.path.slice(0, 120)} ${JSON.stringify(r.headers).slice(0, 200)} → ${res.statusCode} ${text.slice(0, 200)}`
  assert.ok(res.statusCode < 500, label)
  let code = ''
  if (res.statusCode >= 400) {
    assert.match(String(res.headers['content-type']), /^application\/json/, label)
    const body = JSON.parse(text) as Record<string, unknown>
    assert.deepEqual(Object.keys(body).sort(), ['code', 'message'], label)
    assert.equal(typeof body.code, 'string', label)
    assert.ok(typeof body.message === 'string' && body.message.length > 0, label)
    code = ` ${body.code}`
  }
  const key = `${res.statusCode}${code}`
  seen.statuses.set(key, (seen.statuses.get(key) ?? 0) + 1)
  if (r.method === 'POST' && res.statusCode === 201 && r.path.startsWith('/v1/coupons')) {
    const id = (JSON.parse(text) as { id?: unknown }).id
    if (typeof id === 'number' && !r.path.includes('/issues')) seen.created.add(id)
  }
}

async function snapshot(t: TestApp, coupons: Coupons, seen: Seen) {
  const db = t.container.database.db
  const rows = await db.selectFrom('coupons').selectAll().orderBy('id').execute()
  const issues = await db.selectFrom('coupon_issues').selectAll().orderBy('id').execute()
  const won = await Promise.all(coupons.closed.map((id) => t.container.gate.won(id)))
  const untouched = rows.filter(
    (c) => Number(c.id) !== coupons.patchable && !seen.created.has(Number(c.id)),
  )
  return { coupons: untouched, issues, won }
}

async function closedCoupons(t: TestApp): Promise<Coupons> {
  const now = Date.now()
  const soldOut = await createCoupon(t.app, { totalQuantity: 1 })
  const won = await t.container.issues.issue(soldOut, 'the-winner')
  assert.ok(won.won)
  // Redis mode: persisted by the worker, before the snapshot is taken.
  await waitFor(
    'the winner as a row',
    async () => (await countIssues(t.container.database.db, soldOut)) === 1,
  )
  const ended = await createCoupon(t.app, {
    issueStart: iso(now - 2 * HOUR),
    issueEnd: iso(now - HOUR),
  })
  const notStarted = await createCoupon(t.app, {
    issueStart: iso(now + HOUR),
    issueEnd: iso(now + 2 * HOUR),
  })
  const patchable = await createCoupon(t.app, {
    issueStart: iso(now + HOUR),
    issueEnd: iso(now + 2 * HOUR),
  })
  return { closed: [soldOut, ended, notStarted], patchable }
}

async function fuzz(t: TestApp, pool: Pool, numRuns: number, tc: TestContext) {
  const coupons = await closedCoupons(t)
  const seen: Seen = { created: new Set(), statuses: new Map() }
  const before = await snapshot(t, coupons, seen)
  await fc.assert(
    fc.asyncProperty(fc.oneof(requests(coupons), nearlyValid(coupons)), (r) => send(pool, r, seen)),
    { numRuns, seed: SEED, endOnFailure: true },
  )
  assert.deepEqual(await snapshot(t, coupons, seen), before, 'nothing changed')
  const tally = [...seen.statuses].sort(([a], [b]) => a.localeCompare(b))
  tc.diagnostic(tally.map(([k, n]) => `${k}: ${n}`).join(', '))
}

describe('fuzz: every route, embedded (SQLite)', () => {
  let t: TestApp
  let pool: Pool

  before(async () => {
    t = await startApp()
    pool = httpPool(await t.listen(), 16)
  })

  after(async () => {
    await pool.close()
    await t.close()
  })

  it('generated requests: never a 5xx, errors as {code, message}, nothing changed', async (tc) => {
    await fuzz(t, pool, RUNS ?? 2000, tc)
  })
})

describe('fuzz: every route, Redis mode (PostgreSQL)', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()

  it('generated requests: never a 5xx, errors as {code, message}, nothing changed', async (tc) => {
    const service = await suite.start()
    await fuzz(service, service.pool, RUNS ?? 600, tc)
  })
})
