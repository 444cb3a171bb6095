/**
 * Who may spend, give back and list a user's coupons (SPEC "After the win"):
 * the service token, the admin token, or with user auth on the user's own
 * token. No token or a wrong one is 401, another user's token 403, and a refusal
 * changes nothing — in both modes, with user auth on and off. Every route ×
 * every kind of caller.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { LightMyRequestResponse } from 'fastify'
import { SignJWT } from 'jose'
import { admin, createCoupon, service, startApp, type TestApp } from '../helpers/app.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import { cancelUse, couponBox, issueRow, useCoupon } from '../helpers/use.js'

const SECRET = 'a-test-jwt-secret-of-at-least-32-characters'
const jwtOf = async (sub: string, secret = SECRET) => {
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(secret))
  return { authorization: `Bearer ${jwt}` }
}
const order = (orderId: string) => ({ orderId, orderAmount: 200_000 })

type Caller =
  | 'none'
  | 'wrong token'
  | "another user's token"
  | "the user's own token"
  | 'service'
  | 'admin'
/** What each caller gets, by user auth: the status, or 'ok' for the route's success. */
const EXPECTED: Record<'on' | 'off', Record<Caller, 401 | 403 | 'ok'>> = {
  on: {
    none: 401,
    'wrong token': 401,
    "another user's token": 403,
    "the user's own token": 'ok',
    service: 'ok',
    admin: 'ok',
  },
  // No user tokens exist with user auth off: a JWT is just a token that is
  // neither the service's nor the admin's.
  off: {
    none: 401,
    'wrong token': 401,
    "another user's token": 401,
    "the user's own token": 401,
    service: 'ok',
    admin: 'ok',
  },
}

async function callers(): Promise<Record<Caller, Record<string, string>>> {
  return {
    none: {},
    'wrong token': { authorization: 'Bearer not-a-token-of-this-service' },
    "another user's token": await jwtOf('ben'),
    "the user's own token": await jwtOf('amy'),
    service,
    admin,
  }
}

const MODES = {
  embedded: { skip: async () => false as const, env: () => ({}) },
  redis: {
    skip: () => skipUnless('redis'),
    env: () => ({ REDIS_URL, REDIS_KEY_PREFIX: uniquePrefix() }),
  },
}

const codeOf = { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN' } as const

function assertRefused(res: LightMyRequestResponse, status: 401 | 403, what: string) {
  assert.equal(res.statusCode, status, `${what}: ${res.body}`)
  assert.deepEqual(Object.keys(res.json()), ['code', 'message'], what)
  assert.equal(res.json().code, codeOf[status], what)
}

for (const [mode, m] of Object.entries(MODES)) {
  for (const userAuth of ['on', 'off'] as const) {
    describe(`after the win, ${mode} mode, user auth ${userAuth}`, { skip: await m.skip() }, () => {
      let t: TestApp
      let couponId: number
      let prefix: string | undefined
      before(async () => {
        const env: Record<string, string> = m.env()
        prefix = env.REDIS_KEY_PREFIX
        t = await startApp({
          env: { ...env, ...(userAuth === 'on' ? { JWT_SECRET: SECRET } : {}) },
        })
        couponId = await createCoupon(t.app)
        for (const u of ['amy', 'ben']) {
          const res = await t.app.inject({
            method: 'POST',
            url: `/v1/coupons/${couponId}/issues`,
            ...(userAuth === 'on' ? { headers: await jwtOf(u) } : { payload: { userId: u } }),
          })
          assert.equal(res.statusCode, 201, res.body)
        }
      })
      after(async () => {
        await t?.close()
        if (!prefix) return
        const redis = redisClient()
        await deleteKeys(redis, prefix)
        redis.disconnect()
      })

      it('answers every route as the caller deserves; a refusal changes nothing', async () => {
        const db = t.container.database.db
        for (const [caller, headers] of Object.entries(await callers()) as [
          Caller,
          Record<string, string>,
        ][]) {
          const expected = EXPECTED[userAuth][caller]
          const what = (route: string) => `${route} by ${caller}`
          const before = await issueRow(db, couponId, 'amy')
          const orderId = `o-${caller.replace(/\W+/g, '-')}`
          const use = await useCoupon(t.app, couponId, 'amy', order(orderId), headers)
          const box = await couponBox(t.app, 'amy', headers)
          const cancel = await cancelUse(t.app, couponId, 'amy', orderId, headers)
          if (expected === 'ok') {
            assert.equal(use.statusCode, 200, what(`use: ${use.body}`))
            assert.equal(use.json().orderId, orderId)
            assert.equal(box.statusCode, 200, what(`box: ${box.body}`))
            assert.deepEqual(
              box
                .json()
                .items.map((i: { couponId: number; orderId: string }) => [i.couponId, i.orderId]),
              [[couponId, orderId]],
            )
            assert.equal(cancel.statusCode, 200, what(`cancel: ${cancel.body}`))
            assert.equal(cancel.json().state, 'ISSUED')
          } else {
            assertRefused(use, expected, what('POST …/use'))
            assertRefused(box, expected, what('GET /v1/users/{userId}/coupons'))
            assertRefused(cancel, expected, what('DELETE …/use'))
          }
          // The refused left it as it was; the allowed gave it back.
          const now = await issueRow(db, couponId, 'amy')
          assert.equal(now?.order_id ?? null, null, what('left unused'))
          if (expected !== 'ok') assert.deepEqual(now, before, what('changed nothing'))
        }
      })

      it('refuses a token signed with another key 401, and checks the token before the body', async () => {
        const forged = await jwtOf('amy', 'another-secret-of-at-least-32-characters!')
        assertRefused(await useCoupon(t.app, couponId, 'amy', order('o-f'), forged), 401, 'forged')
        // Bad input from an anonymous caller learns nothing about the body's rules.
        assertRefused(
          await useCoupon(t.app, couponId, 'amy', { bad: true }, {}),
          401,
          'anonymous bad body',
        )
      })
    })
  }
}

type Operation = { security?: Record<string, string[]>[] }
const schemesOf = (op: Operation | undefined) => op?.security?.map((r) => Object.keys(r).join('+'))

for (const userAuth of ['on', 'off'] as const) {
  describe(`the OpenAPI document, user auth ${userAuth}`, () => {
    let t: TestApp
    before(async () => {
      t = await startApp({ env: userAuth === 'on' ? { JWT_SECRET: SECRET } : {} })
    })
    after(async () => t?.close())

    it("states each route's security", async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json()
      assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), [
        'adminToken',
        'serviceToken',
        'userToken',
      ])
      const paths = doc.paths as Record<string, Record<string, Operation>>
      for (const [path, operations] of Object.entries(paths)) {
        for (const [method, op] of Object.entries(operations)) {
          assert.ok(Array.isArray(op.security), `${method} ${path} states its security`)
        }
      }
      const spender = ['serviceToken', 'adminToken', ...(userAuth === 'on' ? ['userToken'] : [])]
      const user = userAuth === 'on' ? ['userToken'] : []
      const expected: [string, string, string[]][] = [
        ['/v1/coupons/{couponId}/issues/{userId}/use', 'post', spender],
        ['/v1/coupons/{couponId}/issues/{userId}/use', 'delete', spender],
        ['/v1/users/{userId}/coupons', 'get', spender],
        ['/v1/coupons/{couponId}/issues', 'post', user],
        // The service and admin tokens also read a user's coupon, with its partner code.
        [
          '/v1/coupons/{couponId}/issues/{userId}',
          'get',
          userAuth === 'on'
            ? ['userToken', 'serviceToken', 'adminToken']
            : ['', 'serviceToken', 'adminToken'],
        ],
        ['/v1/coupons/{couponId}/codes', 'post', ['adminToken']],
        ['/v1/coupons/{couponId}/codes', 'get', ['adminToken']],
        ['/v1/coupons/{couponId}/issues.csv', 'get', ['adminToken']],
        ['/v1/coupons/{couponId}', 'get', []],
        ['/v1/coupons/{couponId}/stats', 'get', []],
        ['/v1/coupons', 'post', ['adminToken']],
        ['/v1/coupons', 'get', ['adminToken']],
        ['/v1/coupons/{couponId}', 'patch', ['adminToken']],
        ['/v1/admin/overview', 'get', ['adminToken']],
      ]
      for (const [path, method, schemes] of expected) {
        assert.deepEqual(schemesOf(paths[path]?.[method]), schemes, `${method} ${path}`)
      }
    })
  })
}

describe('after the win without SERVICE_TOKEN', () => {
  let t: TestApp
  before(async () => {
    t = await startApp({ env: { SERVICE_TOKEN: '' } })
  })
  after(async () => t?.close())

  it('takes the admin token only', async () => {
    const couponId = await createCoupon(t.app)
    await t.app.inject({
      method: 'POST',
      url: `/v1/coupons/${couponId}/issues`,
      payload: { userId: 'cy' },
    })
    assertRefused(await useCoupon(t.app, couponId, 'cy', order('o-1'), service), 401, 'service')
    assertRefused(await couponBox(t.app, 'cy', { authorization: 'Bearer ' }), 401, 'empty bearer')
    assert.equal((await useCoupon(t.app, couponId, 'cy', order('o-1'), admin)).statusCode, 200)
  })
})
