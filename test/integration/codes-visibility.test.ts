/**
 * Who sees a win's partner code (SPEC "Partner codes"): the winner of rank r has
 * code number r, shown in `GET …/issues/{userId}` only to the callers allowed to
 * spend the coupon (service, admin, the user's own token) and in the coupon box;
 * never to anonymous callers, another user, nor in stats, the coupon, the
 * overview, /metrics or the logs. Embedded on each dialect, and in Redis mode
 * while the wins are QUEUED and once they are rows.
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'
import pino from 'pino'
import type { Dialect } from '../../src/config.js'
import {
  admin,
  createCoupon,
  requestIssue,
  service,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import { uploadCodes } from '../helpers/codes.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { waitFor } from '../helpers/storm.js'
import { couponBox } from '../helpers/use.js'

const SECRET = 'a-test-jwt-secret-of-at-least-32-characters'
const jwtOf = async (sub: string) => {
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET))
  return { authorization: `Bearer ${jwt}` }
}

const CODES = ['SECRET-CODE-0001', 'SECRET-CODE-0002', 'SECRET-CODE-0003']
const WRONG = { authorization: 'Bearer not-a-token-of-this-service' }

function status(app: FastifyInstance, id: number, user: string, headers = {}) {
  return app.inject({ url: `/v1/coupons/${id}/issues/${user}`, headers })
}

/**
 * A coupon of 4 with 3 codes, won by u1..u3 in that order, each 201 carrying its
 * code; the codes are the limit, so u4 finds it sold out.
 */
async function wonWithCodes(app: FastifyInstance) {
  const id = await createCoupon(app, { totalQuantity: 4 })
  assert.equal((await uploadCodes(app, id, { codes: CODES })).statusCode, 200)
  for (const [i, u] of ['u1', 'u2', 'u3'].entries()) {
    const res = await requestIssue(app, id, u)
    assert.equal(res.statusCode, 201, res.body)
    assert.deepEqual(res.json(), { couponId: id, userId: u, rank: i + 1, code: CODES[i] })
  }
  const late = await requestIssue(app, id, 'u4')
  assert.equal(late.statusCode, 409, late.body)
  assert.equal(late.json().code, 'SOLD_OUT')
  assert.equal(late.body.includes('SECRET'), false)
  return id
}

/** Rank r ↔ code r, for the service and admin; nothing for anonymous callers or a wrong token. */
async function checkMatrix(app: FastifyInstance, id: number, state: string) {
  for (const [i, user] of ['u1', 'u2', 'u3'].entries()) {
    const code = CODES[i] ?? null
    for (const headers of [service, admin]) {
      const res = await status(app, id, user, headers)
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.json().state, state)
      assert.equal(res.json().rank, i + 1)
      assert.equal(res.json().code, code, `${user}: code number rank`)
    }
    const anonymous = await status(app, id, user)
    assert.equal(anonymous.statusCode, 200)
    assert.equal('code' in anonymous.json(), false)
    assert.equal(anonymous.body.includes('SECRET'), false)
    const wrong = await status(app, id, user, WRONG)
    assert.equal(wrong.statusCode, 401)
    assert.equal(wrong.body.includes('SECRET'), false)
    const box = (await couponBox(app, user)).json().items
    assert.deepEqual(
      box.map((i: { couponId: number; code: string | null; state: string }) => [
        i.couponId,
        i.code,
        i.state,
      ]),
      [[id, code, state]],
    )
  }
}

/** Everything else a caller can read about the coupon, none of it with a code. */
async function assertNowhereElse(app: FastifyInstance, id: number, logs: string[]) {
  const reads = [
    await app.inject({ url: `/v1/coupons/${id}/stats` }),
    await app.inject({ url: `/v1/coupons/${id}` }),
    await app.inject({ url: '/v1/coupons', headers: admin }),
    await app.inject({ url: '/v1/admin/overview', headers: admin }),
    await app.inject({ url: '/metrics' }),
  ]
  for (const res of reads) {
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.body.includes('SECRET-CODE'), false, res.body.slice(0, 300))
  }
  assert.ok(logs.length > 0, 'the service logged something')
  assert.equal(logs.join('').includes('SECRET-CODE'), false)
}

function captureLogs() {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk))
      done()
    },
  })
  return { lines, logger: pino({ level: 'debug' }, stream) }
}

for (const dialect of DIALECTS) {
  describe(`partner codes shown to their owners, embedded on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let url: string
    const apps: TestApp[] = []
    const logs = captureLogs()
    before(async () => {
      url = await createDatabaseUrl(dialect)
    })
    after(async () => {
      for (const t of apps) await t.close()
      await dropDatabaseUrl(url)
    })

    it('user auth off: service and admin see code number rank, nobody else sees a code', async () => {
      const t = await startApp({ databaseUrl: url, logger: logs.logger })
      apps.push(t)
      const id = await wonWithCodes(t.app)
      await checkMatrix(t.app, id, 'ISSUED')
      await assertNowhereElse(t.app, id, logs.lines)
    })

    it("user auth on: the user's own token sees it; another user's is 403, none 401", async () => {
      const t = await startApp({ databaseUrl: url, env: { JWT_SECRET: SECRET } })
      apps.push(t)
      const id = await createCoupon(t.app, { totalQuantity: 2 })
      await uploadCodes(t.app, id, { codes: ['OWN-1', 'OWN-2'] })
      for (const u of ['ann', 'bob']) {
        const res = await t.app.inject({
          method: 'POST',
          url: `/v1/coupons/${id}/issues`,
          headers: await jwtOf(u),
        })
        assert.equal(res.statusCode, 201, res.body)
      }
      const own = await status(t.app, id, 'bob', await jwtOf('bob'))
      assert.equal(own.statusCode, 200)
      assert.equal(own.json().code, 'OWN-2')
      assert.equal((await status(t.app, id, 'bob', service)).json().code, 'OWN-2')
      assert.equal((await status(t.app, id, 'bob', admin)).json().code, 'OWN-2')
      for (const [headers, code] of [
        [await jwtOf('ann'), 403],
        [{}, 401],
        [WRONG, 401],
      ] as const) {
        const res = await status(t.app, id, 'bob', headers)
        assert.equal(res.statusCode, code)
        assert.equal(res.body.includes('OWN-'), false)
      }
      const box = await couponBox(t.app, 'ann', await jwtOf('ann'))
      assert.equal(box.json().items[0].code, 'OWN-1')
      assert.equal((await couponBox(t.app, 'ann', await jwtOf('bob'))).statusCode, 403)
    })
  })
}

const REDIS_DIALECTS = DIALECTS.filter((d): d is Exclude<Dialect, 'sqlite'> => d !== 'sqlite')
for (const dialect of REDIS_DIALECTS) {
  describe(`partner codes shown to their owners, Redis mode on ${dialect}`, {
    skip: await skipUnlessRedisSuite({ dialect }),
  }, () => {
    const suite = redisSuite({ dialect })

    it('shows code number rank while the win is QUEUED and once it is a row', async (t) => {
      const s = await suite.start({ worker: false }, t)
      const id = await wonWithCodes(s.app)
      await checkMatrix(s.app, id, 'QUEUED')
      await s.startWorker()
      await waitFor('the wins persisted', async () => {
        const res = await status(s.app, id, 'u3', service)
        return res.json().state === 'ISSUED'
      })
      await checkMatrix(s.app, id, 'ISSUED')
      await assertNowhereElse(s.app, id, ['(not captured)'])
    })
  })
}
