/**
 * User auth: with JWT_SECRET (HS256) or JWT_PUBLIC_KEY (ES256, RS256) the issue
 * endpoints need a bearer JWT and the user is its `sub`.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { InjectOptions } from 'fastify'
import { exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { countIssues } from '../helpers/issue-counts.js'

const SECRET = 'a-test-jwt-secret-of-at-least-32-characters'
const secretKey = new TextEncoder().encode(SECRET)

const hs256 = (sub: string | null, expiresAt: string | number = '1h', key = secretKey) => {
  const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuedAt()
  if (sub !== null) jwt.setSubject(sub)
  return jwt.setExpirationTime(expiresAt).sign(key)
}
type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

describe('user auth with JWT_SECRET (HS256)', () => {
  let t: TestApp
  let couponId: number
  before(async () => {
    t = await startApp({ env: { JWT_SECRET: SECRET } })
    couponId = await createCoupon(t.app)
  })
  after(async () => t?.close())

  const inject = (options: InjectOptions) => t.app.inject(options)
  const issue = (headers: Record<string, string>, payload?: unknown) =>
    inject({
      method: 'POST',
      url: `/v1/coupons/${couponId}/issues`,
      headers,
      ...(payload === undefined ? {} : { payload: payload as object }),
    })

  it('refuses an issue without a token, or with a bad or expired one: 401', async () => {
    const otherSecret = new TextEncoder().encode('another-secret-another-secret-another')
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .sign(otherSecret)
    const expired = await hs256('mallory', Math.floor(Date.now() / 1000) - 60)
    const unsigned = new UnsecuredJWT({}).setSubject('mallory').encode()
    const noSubject = await hs256(null)
    const badSubject = await hs256('not allowed!')
    for (const headers of [
      {},
      bearer('not-a-jwt'),
      bearer(forged),
      bearer(expired),
      bearer(unsigned),
      bearer(noSubject),
      bearer(badSubject),
      { authorization: await hs256('mallory') }, // no "Bearer "
    ]) {
      const res = await issue(headers, { userId: 'mallory' })
      assert.equal(res.statusCode, 401, JSON.stringify(headers))
      assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
      assert.equal(res.json().code, 'UNAUTHORIZED')
    }
    assert.equal(await countIssues(t.container.database.db, couponId), 0)
  })

  it('issues to the token subject, with or without a body', async () => {
    const alice = await hs256('alice')
    const res = await issue(bearer(alice))
    assert.equal(res.statusCode, 201, res.body)
    assert.deepEqual(res.json(), { couponId, userId: 'alice', rank: 1 })
    assert.equal((await issue(bearer(alice), {})).json().code, 'ALREADY_ISSUED')
    assert.equal((await issue(bearer(alice), { userId: 'alice' })).json().code, 'ALREADY_ISSUED')

    const bob = await hs256('bob')
    assert.deepEqual((await issue(bearer(bob), {})).json(), { couponId, userId: 'bob', rank: 2 })
    const carol = await hs256('carol')
    const repeated = await issue(bearer(carol), { userId: 'carol' })
    assert.deepEqual(repeated.json(), { couponId, userId: 'carol', rank: 3 })
    // A numeric subject is the same user as the integer in a body.
    const numeric = await issue(bearer(await hs256('12')), { userId: 12 })
    assert.deepEqual(numeric.json(), { couponId, userId: '12', rank: 4 })
  })

  it('refuses a body userId other than the subject: 403 FORBIDDEN, nothing issued', async () => {
    const dave = await hs256('dave')
    const res = await issue(bearer(dave), { userId: 'erin' })
    assert.equal(res.statusCode, 403)
    assert.equal(res.json().code, 'FORBIDDEN')
    const compat = await inject({
      method: 'POST',
      url: '/v1/issue',
      headers: bearer(dave),
      payload: { userId: 5, couponId },
    })
    assert.equal(compat.statusCode, 403)
    for (const userId of ['dave', 'erin', '5']) {
      const s = await inject({
        method: 'GET',
        url: `/v1/coupons/${couponId}/issues/${userId}`,
        headers: bearer(await hs256(userId)),
      })
      assert.equal(s.json().code, 'NOT_ISSUED', userId)
    }
  })

  it("lets a user read only their own status: another user's is 403", async () => {
    const frank = await hs256('frank')
    assert.equal((await issue(bearer(frank))).statusCode, 201)
    const own = await inject({
      method: 'GET',
      url: `/v1/coupons/${couponId}/issues/frank`,
      headers: bearer(frank),
    })
    assert.equal(own.statusCode, 200)
    assert.equal(own.json().userId, 'frank')
    const other = await inject({
      method: 'GET',
      url: `/v1/coupons/${couponId}/issues/frank`,
      headers: bearer(await hs256('grace')),
    })
    assert.equal(other.statusCode, 403)
    assert.equal(other.json().code, 'FORBIDDEN')
    const anonymous = await inject({ method: 'GET', url: `/v1/coupons/${couponId}/issues/frank` })
    assert.equal(anonymous.statusCode, 401)
  })

  it('leaves the public reads open', async () => {
    assert.equal((await inject({ method: 'GET', url: `/v1/coupons/${couponId}` })).statusCode, 200)
    const stats = await inject({ method: 'GET', url: `/v1/coupons/${couponId}/stats` })
    assert.equal(stats.statusCode, 200)
  })
})

for (const alg of ['ES256', 'RS256'] as const) {
  describe(`user auth with JWT_PUBLIC_KEY (${alg})`, () => {
    let t: TestApp
    let couponId: number
    let privateKey: KeyPair['privateKey']
    let publicPem: string
    before(async () => {
      const pair = await generateKeyPair(alg)
      privateKey = pair.privateKey
      publicPem = await exportSPKI(pair.publicKey)
      t = await startApp({ env: { JWT_PUBLIC_KEY: publicPem } })
      couponId = await createCoupon(t.app)
    })
    after(async () => t?.close())

    const issue = (token: string) =>
      t.app.inject({
        method: 'POST',
        url: `/v1/coupons/${couponId}/issues`,
        headers: bearer(token),
        payload: {},
      })

    it('issues to the subject of a token signed with the private key', async () => {
      const token = await new SignJWT({})
        .setProtectedHeader({ alg })
        .setSubject('heidi')
        .setExpirationTime('5m')
        .sign(privateKey)
      const res = await issue(token)
      assert.equal(res.statusCode, 201, res.body)
      assert.deepEqual(res.json(), { couponId, userId: 'heidi', rank: 1 })
    })

    it('refuses a token from another key, an expired one, and HS256 keyed with the public key', async () => {
      const other = await generateKeyPair(alg)
      const foreign = await new SignJWT({})
        .setProtectedHeader({ alg })
        .setSubject('ivan')
        .sign(other.privateKey)
      // The algorithm-confusion attack: HMAC with the (public) PEM as the secret.
      const symmetric = await hs256('ivan', '1h', new TextEncoder().encode(publicPem))
      const expired = await new SignJWT({})
        .setProtectedHeader({ alg })
        .setSubject('ivan')
        .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
        .sign(privateKey)
      for (const token of [foreign, symmetric, expired]) {
        const res = await issue(token)
        assert.equal(res.statusCode, 401)
        assert.equal(res.json().code, 'UNAUTHORIZED')
      }
      assert.equal(await countIssues(t.container.database.db, couponId), 1)
    })
  })
}
