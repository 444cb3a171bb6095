/**
 * `firstcome serve` on an empty database: the banner (dashboard URL, admin token,
 * a curl line) and the demo coupon, created once. An operator's own ADMIN_TOKEN
 * is never printed; PUBLIC_URL sets the printed URLs.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { serversOnOneDatabase } from '../helpers/processes.js'

interface CouponJson {
  id: number
  title: string
  totalQuantity: number | null
  issueStart: string
  issueEnd: string
}

async function listCoupons(url: string, token: string): Promise<CouponJson[]> {
  const res = await fetch(`${url}/v1/coupons`, { headers: { authorization: `Bearer ${token}` } })
  assert.equal(res.status, 200)
  return ((await res.json()) as { items: CouponJson[] }).items
}

describe('serve on an empty database', () => {
  const servers = serversOnOneDatabase()

  it('prints the dashboard, a generated admin token and a curl line, and creates 네고왕', {
    timeout: 60_000,
  }, async () => {
    const s = await servers.start()
    const out = s.stdout()

    const token = /admin token\s+(\S+)\s+\(generated/.exec(out)?.[1]
    assert.ok(token, `a generated admin token in the banner:\n${out}`)
    assert.ok(out.includes(`${s.url}/#token=${encodeURIComponent(token)}`), 'the dashboard URL')
    const curl = /curl .*\/v1\/coupons\/(\d+)\/issues.*/.exec(out)
    assert.ok(curl, `a curl line:\n${out}`)
    assert.ok(curl[0].includes(s.url))

    // The printed token is the one the server accepts.
    const coupons = await listCoupons(s.url, token)
    assert.equal(coupons.length, 1)
    const demo = coupons[0]
    assert.ok(demo)
    assert.equal(demo.id, 1)
    assert.equal(curl[1], '1')
    assert.equal(demo.title, '네고왕')
    assert.equal(demo.totalQuantity, 500)
    const now = Date.now()
    assert.ok(Date.parse(demo.issueStart) <= now && now < Date.parse(demo.issueEnd), 'open now')

    // The curl line works as printed.
    const res = await fetch(`${s.url}/v1/coupons/1/issues`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 1 }),
    })
    assert.equal(res.status, 201)
    assert.deepEqual(await res.json(), { couponId: 1, userId: '1', rank: 1 })

    s.signal('SIGTERM')
    assert.deepEqual(await s.exited, { code: 0, signal: null })
  })

  it('does not create another demo coupon on the next start, nor print a given token', {
    timeout: 60_000,
  }, async () => {
    assert.ok(servers.databaseUrl, 'runs after the first start')
    const s = await servers.start({
      adminToken: 'given-admin-token',
      env: { PUBLIC_URL: 'http://proxy.test:18080/' },
    })
    const out = s.stdout()
    assert.match(out, /admin token\s+from ADMIN_TOKEN/)
    // The operator's token is not written out, not even in the dashboard URL.
    assert.doesNotMatch(out, /given-admin-token/)
    assert.doesNotMatch(out, /#token=/)
    assert.doesNotMatch(out, /demo coupon/)
    // PUBLIC_URL: what users open, not the port this process listens on.
    assert.ok(out.includes(`listening on ${s.url}`), out)
    assert.match(out, /dashboard +http:\/\/proxy\.test:18080\/ /)
    assert.match(out, /API docs +http:\/\/proxy\.test:18080\/docs/)
    assert.match(out, /curl .* http:\/\/proxy\.test:18080\/v1\/coupons\/1\/issues/)

    const coupons = await listCoupons(s.url, 'given-admin-token')
    assert.deepEqual(
      coupons.map((c) => [c.id, c.title]),
      [[1, '네고왕']],
    )
    // The first start's win survived the restart.
    const status = await fetch(`${s.url}/v1/coupons/1/issues/1`)
    assert.equal(status.status, 200)
    assert.equal(((await status.json()) as { state: string }).state, 'ISSUED')
  })
})
