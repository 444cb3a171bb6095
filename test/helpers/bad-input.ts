/**
 * Table-driven bad input: each case is one request that must be answered with a
 * 4xx `{code, message}` (nothing else, nothing internal) and change nothing.
 */
import assert from 'node:assert/strict'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import type { TestApp } from './app.js'

export interface BadCase {
  name: string
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE'
  url: string
  /** an object is sent as JSON; a string is sent as it is */
  body?: string | object
  /** defaults to application/json when there is a body */
  contentType?: string
  headers?: Record<string, string>
  status: number
  code: string
}

/** A body too big to read (the limit is 16 KiB): 2 MB of JSON. */
export const TWO_MEGABYTES = JSON.stringify({ padding: 'x'.repeat(2 * 1024 * 1024) })

/**
 * The raw JSON of `valid` with `key` added in front, for keys that JSON.stringify of
 * an object literal cannot produce (`__proto__`) or that must reach the parser.
 */
export function withRawKey(key: string, valid: object): string {
  const rest = JSON.stringify(valid).slice(1)
  return `{"${key}": {"polluted": true}${rest === '}' ? '' : ','}${rest}`
}

/** The cases every JSON-body route shares, built around one valid body. */
export function bodyShapeCases(
  base: Pick<BadCase, 'method' | 'url' | 'headers'>,
  valid: object,
): BadCase[] {
  const bad = (name: string, body: string | undefined, status = 400, code = 'VALIDATION_FAILED') =>
    body === undefined ? { ...base, name, status, code } : { ...base, name, body, status, code }
  return [
    bad('malformed JSON', '{"userId": '),
    bad('JSON with trailing garbage', `${JSON.stringify(valid)} x`),
    bad('a JSON array', JSON.stringify([valid])),
    bad('a JSON string', '"hello"'),
    bad('a JSON number', '5'),
    bad('JSON null', 'null'),
    bad('JSON true', 'true'),
    bad('an empty JSON body', ''),
    bad('no body at all', undefined),
    bad('a __proto__ key', withRawKey('__proto__', valid)),
    bad('a constructor key', withRawKey('constructor', valid)),
    bad('a 2 MB body', TWO_MEGABYTES, 413, 'PAYLOAD_TOO_LARGE'),
    {
      ...base,
      name: 'text/plain',
      body: JSON.stringify(valid),
      contentType: 'text/plain',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      ...base,
      name: 'a form',
      body: 'userId=1',
      contentType: 'application/x-www-form-urlencoded',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      ...base,
      name: 'XML',
      body: '<userId>1</userId>',
      contentType: 'application/xml',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
  ]
}

/** Path segments that are not a coupon id (a positive integer of up to 15 digits). */
export const BAD_COUPON_IDS = [
  'abc',
  '0',
  '-1',
  '1.5',
  '01',
  '1e3',
  '%20',
  '9007199254740993',
  '9'.repeat(16),
  '9'.repeat(17),
  '9'.repeat(300),
  '%E0%A4%A',
]

/** One case per bad coupon id in the path; `url(id)` is the path around it. */
export function couponIdCases(
  base: Pick<BadCase, 'method' | 'headers' | 'body'>,
  url: (couponId: string) => string,
): BadCase[] {
  return BAD_COUPON_IDS.map((bad) => ({
    ...base,
    name: `coupon id ${bad.slice(0, 20)}`,
    url: url(bad),
    status: 400,
    code: 'VALIDATION_FAILED',
  }))
}

/** `valid` with one field replaced (or removed, for `undefined`). */
export function fieldCases(
  base: Pick<BadCase, 'method' | 'url' | 'headers'>,
  valid: Record<string, unknown>,
  field: string,
  values: unknown[],
): BadCase[] {
  return values.map((value) => {
    const body: Record<string, unknown> = { ...valid }
    if (value === undefined) delete body[field]
    else body[field] = value
    const shown = value === undefined ? 'missing' : JSON.stringify(value).slice(0, 40)
    return { ...base, name: `${field} ${shown}`, body, status: 400, code: 'VALIDATION_FAILED' }
  })
}

export function requestOf(c: BadCase): InjectOptions {
  const headers: Record<string, string> = { ...c.headers }
  const options: InjectOptions = { method: c.method, url: c.url, headers }
  if (c.body !== undefined) {
    headers['content-type'] = c.contentType ?? 'application/json'
    options.payload = typeof c.body === 'string' ? c.body : JSON.stringify(c.body)
  }
  return options
}

const INTERNALS = /node_modules|\.ts:\d|\.js:\d|\bat [\w.<>]+ \(|stack|SQLITE|kysely|TypeError/i

export function assertRefused(res: LightMyRequestResponse, c: BadCase) {
  const label = `${c.method} ${c.url.slice(0, 60)}: ${c.name}`
  assert.equal(res.statusCode, c.status, `${label} → ${res.statusCode} ${res.body.slice(0, 200)}`)
  assert.match(String(res.headers['content-type']), /^application\/json/, label)
  const body: unknown = JSON.parse(res.body)
  assert.ok(typeof body === 'object' && body !== null, label)
  assert.deepEqual(Object.keys(body), ['code', 'message'], label)
  const { code, message } = body as { code: unknown; message: unknown }
  assert.equal(code, c.code, label)
  assert.ok(typeof message === 'string' && message.length > 0, label)
  assert.doesNotMatch(message, INTERNALS, label)
  assert.ok(message.length < 500, `${label}: a short message`)
}

/** Everything a bad request could have changed: the rows of both tables and the gate. */
export async function snapshot(t: TestApp, couponIds: readonly number[]): Promise<unknown> {
  const db = t.container.database.db
  const coupons = await db.selectFrom('coupons').selectAll().orderBy('id').execute()
  const issues = await db.selectFrom('coupon_issues').selectAll().orderBy('id').execute()
  const won = await Promise.all(couponIds.map((id) => t.container.gate.won(id)))
  return { coupons, issues, won }
}

/** Sends every case and checks the answer, and that nothing changed. */
export async function assertAllRefused(t: TestApp, cases: BadCase[], couponIds: number[]) {
  const before = await snapshot(t, couponIds)
  for (const c of cases) {
    const res = await t.app.inject(requestOf(c))
    assertRefused(res, c)
    assert.deepEqual(await snapshot(t, couponIds), before, `${c.name} changed nothing`)
  }
}
