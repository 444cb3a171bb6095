/**
 * Who may spend, give back and list a user's coupons: with user auth on, the
 * admin token or the user's own token (else 401/403, nothing changed); with user
 * auth off, anyone, as on the issue route.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import { admin, createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { cancelUse, couponBox, issueRow, useCoupon } from '../helpers/use.js'

const SECRET = 'a-test-jwt-secret-of-at-least-32-characters'
const tokenOf = async (sub: string) => {
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET))
  return { authorization: `Bearer ${jwt}` }
}
const order = (orderId: string) => ({ orderId, orderAmount: 200_000 })

describe('spending with user auth on (JWT_SECRET)', () => {
  let t: TestApp
  let couponId: number
  before(async () => {
    t = await startApp({ env: { JWT_SECRET: SECRET } })
    couponId = await createCoupon(t.app)
    for (const u of ['amy', 'ben']) {
      const res = await t.app.inject({
        method: 'POST',
        url: `/v1/coupons/${couponId}/issues`,
        headers: await tokenOf(u),
      })
      assert.equal(res.statusCode, 201)
    }
  })
  after(async () => t?.close())

  it('refuses no token or a bad one 401, another user 403, and changes nothing', async () => {
    const db = t.container.database.db
    const before = await issueRow(db, couponId, 'amy')
    const cases: [Record<string, string>, number, string][] = [
      [{}, 401, 'UNAUTHORIZED'],
      [{ authorization: 'Bearer not-the-admin-token' }, 401, 'UNAUTHORIZED'],
      [await tokenOf('ben'), 403, 'FORBIDDEN'],
    ]
    for (const [headers, status, code] of cases) {
      for (const res of [
        await useCoupon(t.app, couponId, 'amy', order('o-x'), headers),
        await cancelUse(t.app, couponId, 'amy', 'o-x', headers),
        await couponBox(t.app, 'amy', headers),
      ]) {
        assert.equal(res.statusCode, status, res.body)
        assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
        assert.equal(res.json().code, code)
      }
    }
    assert.deepEqual(await issueRow(db, couponId, 'amy'), before)
  })

  it("lets the user's own token spend, give back and list", async () => {
    const amy = await tokenOf('amy')
    assert.equal((await useCoupon(t.app, couponId, 'amy', order('o-1'), amy)).statusCode, 200)
    const box = await couponBox(t.app, 'amy', amy)
    assert.equal(box.statusCode, 200)
    assert.equal(box.json().items[0].orderId, 'o-1')
    assert.equal((await cancelUse(t.app, couponId, 'amy', 'o-1', amy)).json().state, 'ISSUED')
  })

  it('lets the admin token (the order service) act for any user', async () => {
    assert.equal((await useCoupon(t.app, couponId, 'ben', order('o-2'), admin)).statusCode, 200)
    assert.equal((await couponBox(t.app, 'ben', admin)).json().items[0].state, 'USED')
    assert.equal((await cancelUse(t.app, couponId, 'ben', 'o-2', admin)).json().state, 'ISSUED')
  })
})

describe('spending with user auth off', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
  })
  after(async () => t?.close())

  it('is open, as the issue route is', async () => {
    const couponId = await createCoupon(t.app)
    await t.app.inject({
      method: 'POST',
      url: `/v1/coupons/${couponId}/issues`,
      payload: { userId: 'cy' },
    })
    assert.equal((await useCoupon(t.app, couponId, 'cy', order('o-1'))).statusCode, 200)
    assert.equal((await couponBox(t.app, 'cy')).json().items.length, 1)
    assert.equal((await cancelUse(t.app, couponId, 'cy', 'o-1')).statusCode, 200)
  })
})
