/**
 * The event page's routes through the real app: GET /e/{couponId} in Korean or
 * English by Accept-Language, with a policy that lets only its own script and
 * style run and sends no referrer; GET /v1/time, the clock its countdown
 * follows, in the OpenAPI document. (The page itself: event-page.browser.test.ts.)
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { pageLanguage } from '../../src/event-page/event-page-routes.js'
import { startApp, type TestApp } from '../helpers/app.js'

describe('the event page routes', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
  })
  after(() => t?.close())

  it('serves one page, in the language the browser prefers', async () => {
    const cases: [string | undefined, string][] = [
      ['ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7', 'ko'],
      ['en-US,en;q=0.9,ko;q=0.8', 'en'],
      ['ja, ko;q=0.3', 'ko'],
      ['fr-FR, fr;q=0.9', 'en'],
      [undefined, 'ko'],
    ]
    for (const [header, lang] of cases) {
      const res = await t.app.inject({
        url: '/e/12',
        headers: header === undefined ? {} : { 'accept-language': header },
      })
      assert.equal(res.statusCode, 200)
      assert.match(String(res.headers['content-type']), /^text\/html; charset=utf-8/)
      assert.ok(res.body.includes(`<html lang="${lang}">`), `${header} → ${lang}`)
      assert.equal(res.headers['content-language'], lang)
      assert.equal(res.headers.vary, 'accept-language')
      assert.equal(pageLanguage(header), lang)
    }
  })

  it('lets only its own inline script and style run, and sends no referrer', async () => {
    const res = await t.app.inject({ url: '/e/1' })
    const csp = String(res.headers['content-security-policy'])
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/)
    assert.match(csp, /connect-src 'self'/)
    assert.equal(res.headers['referrer-policy'], 'no-referrer')
    assert.doesNotMatch(res.body, /https?:\/\//, 'nothing from the internet')
  })

  it('refuses a path that is not a coupon id, as any route does', async () => {
    for (const url of ['/e/0', '/e/abc', '/e/1234567890123456']) {
      const res = await t.app.inject({ url })
      assert.equal(res.statusCode, 400, url)
      assert.equal(res.json().code, 'VALIDATION_FAILED')
    }
  })

  it('tells the time on the server clock, never cached', async () => {
    const before = Date.now()
    const res = await t.app.inject({ url: '/v1/time' })
    const after = Date.now()
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['cache-control'], 'no-store')
    const { now } = res.json() as { now: number }
    assert.ok(
      Number.isInteger(now) && now >= before && now <= after,
      `${before} ≤ ${now} ≤ ${after}`,
    )
    const spec = (await t.app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, unknown>
    }
    assert.ok(spec.paths['/v1/time'], 'GET /v1/time is in the OpenAPI document')
    assert.equal(spec.paths['/e/{couponId}'], undefined, 'the page is not an API route')
  })
})
