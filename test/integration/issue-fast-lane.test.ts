/**
 * The issue pipeline answers alike through its three adapters: the fast lane, the
 * Fastify issue route and the Fastify compat routes. Every case runs twice, on
 * two coupons set up alike: once over a real socket (the lane takes what it can,
 * hands the rest to Fastify) and once through `app.inject()` (Fastify alone).
 * Status, body (coupon ids aside) and the headers a client reads must match, and
 * each answer must come from the transport the case expects (the lane's metric).
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import Fastify from 'fastify'
import { SignJWT } from 'jose'
import { ISSUE_ROUTE } from '../../src/http/issue-endpoint.js'
import { IssueFastLane, type IssueFastLaneOptions } from '../../src/http/issue-fast-lane.js'
import { Metrics } from '../../src/ops/metrics.js'
import { createCoupon, HOUR, iso, startApp, type TestApp } from '../helpers/app.js'
import {
  assertSameHeaders,
  compat,
  issueBody,
  JSON_TYPE,
  laneAnswers,
  type Req,
  type Seen,
  sameAnswers,
  viaFastify,
  viaInject,
  viaSocket,
} from '../helpers/fast-lane.js'
import { countIssues } from '../helpers/issue-counts.js'

describe('issue fast lane: the same answers as Fastify', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
    await t.listen()
  })
  after(async () => t?.close())

  const open =
    (quantity: number | null = 100) =>
    () =>
      createCoupon(t.app, { totalQuantity: quantity })

  it('answers wins, repeats and sold out alike, and records each win once', async () => {
    const requests: Req[] = [
      { body: issueBody(7) },
      { body: issueBody('7') },
      { body: issueBody('user.b@example:x_y-z') },
      { body: issueBody('L'.repeat(64)) },
      { body: issueBody(Number.MAX_SAFE_INTEGER) },
      { body: issueBody(8) },
      { body: issueBody(7), headers: { 'content-type': 'application/json; charset=utf-8' } },
    ]
    const { answers, coupons } = await sameAnswers(t, open(3), requests)
    for (const id of coupons) assert.equal(await countIssues(t.container.database.db, id), 3)
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 409, 201, 201, 409, 409, 409],
    )
    assert.deepEqual(JSON.parse(answers[0]?.body ?? '').rank, 1)
    assert.equal(JSON.parse(answers[4]?.body ?? '').code, 'SOLD_OUT')
  })

  it('answers the window and unknown coupons alike', async () => {
    const now = Date.now()
    const early = () =>
      createCoupon(t.app, { issueStart: iso(now + HOUR), issueEnd: iso(now + 2 * HOUR) })
    const late = () =>
      createCoupon(t.app, { issueStart: iso(now - 2 * HOUR), issueEnd: iso(now - HOUR) })
    const [notStarted] = (await sameAnswers(t, early, [{ body: issueBody(1) }])).answers
    const [ended] = (await sameAnswers(t, late, [{ body: issueBody(1) }])).answers
    assert.equal(JSON.parse(notStarted?.body ?? '').code, 'ISSUE_NOT_STARTED')
    assert.equal(JSON.parse(ended?.body ?? '').code, 'ISSUE_ENDED')
    const [unknown] = (
      await sameAnswers(t, open(), [{ path: '/v1/coupons/987654321/issues', body: issueBody(1) }])
    ).answers
    assert.equal(unknown?.status, 404)
  })

  it('answers every malformed request alike, and none of them changes anything', async () => {
    const bad: Req[] = [
      { body: '{"userId": 1' },
      { body: 'null' },
      { body: '[]' },
      { body: '"userId"' },
      { body: '{}' },
      { body: issueBody(0) },
      { body: issueBody(-1) },
      { body: issueBody(1.5) },
      { body: issueBody(Number.MAX_SAFE_INTEGER + 1) },
      { body: issueBody('has space') },
      { body: issueBody('L'.repeat(65)) },
      { body: issueBody('') },
      { body: issueBody(null) },
      { body: issueBody({ id: 1 }) },
      { body: '{"userId": 1, "extra": true}' },
      { body: '{"__proto__": {"admin": true}, "userId": 1}' },
      { body: '{"constructor": {"prototype": {"admin": true}}, "userId": 1}' },
      { body: JSON.stringify({ userId: 1, pad: 'x'.repeat(17 * 1024) }) },
      { body: issueBody(1), headers: { 'content-type': 'text/plain' } },
      { body: issueBody(1), headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      { body: issueBody(1), headers: {} },
      { body: '', headers: JSON_TYPE },
      { path: '/v1/coupons/0/issues', body: issueBody(1) },
      { path: '/v1/coupons/01/issues', body: issueBody(1) },
      { path: '/v1/coupons/12345678901234567/issues', body: issueBody(1) },
      { path: '/v1/coupons/x/issues', body: issueBody(1) },
    ]
    const { answers, coupons } = await sameAnswers(t, open(), viaFastify(bad))
    for (const a of answers) {
      assert.ok(a.status >= 400 && a.status < 500, `a 4xx, got ${a.status} ${a.body}`)
      assert.deepEqual(Object.keys(JSON.parse(a.body)), ['code', 'message'])
      assert.doesNotMatch(a.body, /at .*\.js|node_modules/)
    }
    // Nothing was won by any of them, through either path.
    for (const id of coupons) {
      const stats = await t.app.inject({ method: 'GET', url: `/v1/coupons/${id}/stats` })
      assert.equal(stats.json().won, 0)
    }
  })

  it('answers a chunked body, a query string and a trailing slash alike (through Fastify)', async () => {
    const chunked = () => Readable.from([Buffer.from('{"userId":'), Buffer.from('42}')])
    const { answers } = await sameAnswers(
      t,
      open(),
      viaFastify([
        { body: chunked },
        { path: '/v1/coupons/{c}/issues?source=app', body: issueBody(43) },
        { path: '/v1/coupons/{c}/issues/', body: issueBody(44) },
      ]),
    )
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 201, 404],
    )
  })

  it("answers the original's routes alike", async () => {
    const { answers } = await sameAnswers(t, open(1), [
      compat(7),
      compat(7),
      compat(8),
      compat(7, 987654321),
      ...viaFastify([
        compat('7'),
        compat(7, '1'),
        { path: '/v2/issue-async', body: '{"userId": 9, "couponId": 1, "x": 1}' },
        { path: '/v2/issue-async', body: '{"userId": 9}' },
      ]),
      { path: '/v1/issue', body: '{"userId": 9, "couponId": 987654321}' },
      { path: '/v1/issue-async', body: '{"userId": 9, "couponId": 987654321}' },
    ])
    assert.deepEqual(JSON.parse(answers[0]?.body ?? ''), { isSuccess: true })
    assert.deepEqual(JSON.parse(answers[1]?.body ?? '').comment, '이미 발급된 쿠폰입니다.')
    assert.deepEqual(
      JSON.parse(answers[2]?.body ?? '').comment,
      '쿠폰 발급 수량이 유효하지 않습니다.',
    )
    assert.deepEqual(JSON.parse(answers[3]?.body ?? '').comment, '존재하지 않는 쿠폰입니다.')
    assert.equal(answers[4]?.status, 400)
  })

  it('answers an Idempotency-Key alike: a retry with it is the same win, a bad one is a 400', async () => {
    const key = (k: string) => ({ ...JSON_TYPE, 'idempotency-key': k })
    const { answers, coupons } = await sameAnswers(t, open(2), [
      { body: issueBody(1), headers: key('try-1') },
      { body: issueBody(1), headers: key('try-1') },
      { body: issueBody(1), headers: key('try-2') },
      { body: issueBody(1) },
      { body: issueBody(2), headers: key('try-1') },
      { body: issueBody(3), headers: key('a.B:c_d-9') },
      { body: issueBody(1), headers: key('try-1') },
      ...viaFastify([
        { body: issueBody(4), headers: key('') },
        { body: issueBody(4), headers: key('K'.repeat(65)) },
        { body: issueBody(4), headers: key('has space') },
        { body: issueBody(4), headers: key('é') },
        { body: issueBody(4), headers: key('~abc') },
      ]),
      compat(5),
      { ...compat(6), headers: key('bad key, ignored here') },
    ])
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 201, 409, 409, 201, 409, 201, 400, 400, 400, 400, 400, 200, 200],
    )
    assert.equal(answers[1]?.body, answers[0]?.body, 'the retry hears the original answer')
    assert.equal(answers[6]?.body, answers[0]?.body, 'also once sold out')
    assert.equal(JSON.parse(answers[2]?.body ?? '').code, 'ALREADY_ISSUED')
    assert.equal(JSON.parse(answers[5]?.body ?? '').code, 'SOLD_OUT')
    for (const a of answers.slice(7, 12)) assert.equal(JSON.parse(a.body).code, 'VALIDATION_FAILED')
    for (const id of coupons) assert.equal(await countIssues(t.container.database.db, id), 2)
  })

  it('counts the requests it answers in /metrics, by route and status', async () => {
    const id = await createCoupon(t.app)
    const metric = async () => {
      const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body
      const line = text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('http_request_duration_seconds_count{') &&
            l.includes('route="/v1/coupons/:couponId/issues"') &&
            l.includes('status_code="201"'),
        )
      return Number(line?.split(' ').at(-1) ?? 0)
    }
    const before = await metric()
    for (const u of [1, 2, 3])
      await viaSocket(t, `/v1/coupons/${id}/issues`, { body: issueBody(u) })
    assert.equal(await metric(), before + 3)
    assert.equal(await countIssues(t.container.database.db, id), 3)
  })
})

describe('issue fast lane with user auth: the same answers as Fastify', () => {
  const SECRET = 'fast-lane-secret-0123456789abcdef0123'
  let t: TestApp
  before(async () => {
    t = await startApp({ env: { JWT_SECRET: SECRET } })
    await t.listen()
  })
  after(async () => t?.close())

  const token = (sub: string) =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).sign(Buffer.from(SECRET))

  it('takes the user from the token, and refuses a missing, forged or mismatched one alike', async () => {
    const bearer = (jwt: string) => ({ ...JSON_TYPE, authorization: `Bearer ${jwt}` })
    const alice = await token('alice')
    const { answers } = await sameAnswers(t, () => createCoupon(t.app), [
      { body: '{}', headers: bearer(alice) },
      { body: issueBody('alice'), headers: bearer(alice) },
      { body: issueBody('bob'), headers: bearer(await token('carol')) },
      { body: issueBody('bob') },
      { body: '{}', headers: bearer(`${alice}x`) },
      compat(5),
    ])
    assert.deepEqual(
      answers.map((a) => a.status),
      [201, 409, 403, 401, 401, 401],
    )
    assert.equal(JSON.parse(answers[0]?.body ?? '').userId, 'alice')
  })
})

describe('issue fast lane with rate limits: the same answers as Fastify', () => {
  let t: TestApp
  before(async () => {
    t = await startApp({
      // Two proxies: one at 10.255.0.1, then the socket's peer.
      env: { RATE_LIMIT_PER_IP: '3', RATE_LIMIT_PER_USER: '2', TRUST_PROXY: '2' },
    })
    await t.listen()
  })
  after(async () => t?.close())

  // Each case a client of its own (the limit's window is a second).
  const from = (ip: string) => ({ ...JSON_TYPE, 'x-forwarded-for': `${ip}, 10.255.0.1` })
  const limitedAlike = (a: Seen[], b: Seen[]) => {
    assert.deepEqual(
      a.map((x) => x.status),
      b.map((x) => x.status),
    )
    a.forEach((x, i) => {
      if (x.status !== 429) return
      assert.equal(x.body, b[i]?.body)
      assert.equal(x.retryAfter, '1')
      assert.equal(b[i]?.retryAfter, '1')
      assert.equal(x.contentType, b[i]?.contentType)
      assert.deepEqual(x.headers, b[i]?.headers)
      assert.equal(JSON.parse(x.body).code, 'RATE_LIMITED')
    })
  }

  it('refuses a client over its limit 429 alike, every issue route counting once', async () => {
    const id = await createCoupon(t.app)
    const run = async (via: typeof viaSocket, ip: string) => {
      const seen: Seen[] = []
      const issue = (u: string) =>
        via(t, `/v1/coupons/${id}/issues`, { body: issueBody(u), headers: from(ip) })
      seen.push(await issue(`${ip}-1`))
      seen.push(
        await via(t, '/v1/issue', {
          body: JSON.stringify({ userId: Number(ip.split('.').at(-1)), couponId: id }),
          headers: from(ip),
        }),
      )
      seen.push(await issue(`${ip}-2`))
      seen.push(await issue(`${ip}-3`))
      return seen
    }
    const bySocket = await run(viaSocket, '10.1.0.1')
    const byInject = await run(viaInject, '10.1.0.2')
    assert.deepEqual(
      bySocket.map((s) => s.status),
      [201, 200, 201, 429],
    )
    limitedAlike(bySocket, byInject)
  })

  it('takes the client as the proxies saw it, not what the client wrote before it', async () => {
    const id = await createCoupon(t.app)
    // Each request with an address of its own written by the client, to the left
    // of the one the proxies added: all of them count for that one.
    const run = async (via: typeof viaSocket, ip: string) => {
      const seen: Seen[] = []
      for (let i = 0; i < 4; i++)
        seen.push(
          await via(t, `/v1/coupons/${id}/issues`, {
            body: issueBody(`${ip}-spoof-${i}`),
            headers: { ...JSON_TYPE, 'x-forwarded-for': `10.9.9.${i}, ${ip}, 10.255.0.1` },
          }),
        )
      return seen
    }
    const bySocket = await run(viaSocket, '10.3.0.1')
    const byInject = await run(viaInject, '10.3.0.2')
    assert.deepEqual(
      bySocket.map((s) => s.status),
      [201, 201, 201, 429],
    )
    limitedAlike(bySocket, byInject)
  })

  it('refuses a user over their limit 429 alike', async () => {
    const id = await createCoupon(t.app)
    const run = async (via: typeof viaSocket, ip: string, user: string) => {
      const seen: Seen[] = []
      for (let i = 0; i < 3; i++)
        seen.push(
          await via(t, `/v1/coupons/${id}/issues`, { body: issueBody(user), headers: from(ip) }),
        )
      return seen
    }
    // Each user from two clients: the user's limit is theirs wherever they come from.
    const bySocket = [
      ...(await run(viaSocket, '10.2.0.1', 'limited-a')),
      ...(await run(viaSocket, '10.2.0.2', 'limited-a')),
    ]
    const byInject = [
      ...(await run(viaInject, '10.2.0.3', 'limited-b')),
      ...(await run(viaInject, '10.2.0.4', 'limited-b')),
    ]
    assert.deepEqual(
      bySocket.map((s) => s.status),
      [201, 409, 429, 429, 429, 429],
    )
    limitedAlike(bySocket, byInject)
  })

  it('keeps the fast lane on with the limits on', async () => {
    const id = await createCoupon(t.app)
    const before = await laneAnswers(t)
    for (const u of ['l1', 'l2', 'l3'])
      await viaSocket(t, `/v1/coupons/${id}/issues`, {
        body: issueBody(u),
        headers: from('10.3.0.1'),
      })
    assert.equal(await laneAnswers(t), before + 3)
    // Fastify's own answers are not the lane's.
    await viaInject(t, `/v1/coupons/${id}/issues`, {
      body: issueBody('l4'),
      headers: from('10.3.0.2'),
    })
    assert.equal(await laneAnswers(t), before + 3)
  })
})

describe('issue fast lane: a hook it does not apply', () => {
  it('refuses to start, naming it, when a global hook would reach the issue routes', async () => {
    const t = await startApp()
    try {
      t.app.addHook('onSend', async function stampAnswer(_request, reply, payload) {
        reply.header('x-stamp', '1')
        return payload
      })
      await assert.rejects(
        t.listen(),
        /fast lane would skip onSend hook stampAnswer on POST \/v1\/coupons\/:couponId\/issues, .*POST \/v2\/issue-async/,
      )
    } finally {
      await t.close()
    }
  })

  it('refuses to start when a plugin adds a hook to the issue routes themselves', async () => {
    const app = Fastify()
    const lane = new IssueFastLane({ metrics: new Metrics() } as IssueFastLaneOptions)
    lane.watch(app, () => {})
    // As a plugin's onRoute hook does (a rate limiter's per-route hook, say).
    app.addHook('onRoute', (route) => {
      route.preHandler = async function perRoute() {}
    })
    app.post(ISSUE_ROUTE, { onRequest: async function declared() {} }, async () => ({}))
    try {
      await assert.rejects(
        async () => app.ready(),
        (err: Error) => {
          assert.match(err.message, /fast lane would skip preHandler hook perRoute on POST/)
          assert.doesNotMatch(err.message, /declared/)
          return true
        },
      )
    } finally {
      await app.close()
    }
  })

  const bare = () => {
    const app = Fastify()
    const lane = new IssueFastLane({ metrics: new Metrics() } as IssueFastLaneOptions)
    lane.watch(app, () => {})
    return { app, lane }
  }

  it("serves one app: a container's lane refuses a second app it would not watch whole", async () => {
    const { app, lane } = bare()
    const second = Fastify()
    try {
      assert.throws(() => lane.watch(second, () => {}), /serves one app/)
    } finally {
      await app.close()
      await second.close()
    }
  })

  it("starts with a hook in another plugin: encapsulated there, it cannot reach the lane's routes", async () => {
    const { app, lane } = bare()
    await app.register(async (other) => {
      other.addHook('onSend', async function elsewhere(_request, _reply, payload) {
        return payload
      })
      other.get('/elsewhere', async () => 'x')
    })
    await app.register(lane.scope(async (scope) => void scope.post(ISSUE_ROUTE, async () => ({}))))
    try {
      await app.ready()
    } finally {
      await app.close()
    }
  })

  it("refuses to start when a hook is added in the lane's scope", async () => {
    const { app, lane } = bare()
    await app.register(
      lane.scope(async (scope) => {
        scope.addHook('preHandler', async function inScope() {})
        scope.post(ISSUE_ROUTE, async () => ({}))
      }),
    )
    try {
      await assert.rejects(
        async () => app.ready(),
        /skip preHandler hook inScope on POST \/v1\/coupons/,
      )
    } finally {
      await app.close()
    }
  })

  it("refuses to start when an issue route is declared outside the lane's scope", async () => {
    const { app } = bare()
    await app.register(async (other) => void other.post('/v1/issue', async () => ({})))
    try {
      await assert.rejects(
        async () => app.ready(),
        /cannot see the hooks of POST \/v1\/issue: declare it in the lane's scope/,
      )
    } finally {
      await app.close()
    }
  })

  it('tells answers apart by any header but the hop-by-hop ones', () => {
    const seen = (headers: Record<string, string>): Seen => ({
      status: 201,
      body: '{}',
      contentType: 'application/json; charset=utf-8',
      retryAfter: undefined,
      headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    })
    assert.throws(() => assertSameHeaders(seen({}), seen({ 'x-stamp': '1' }), 'a stamped answer'))
    assert.throws(() => assertSameHeaders(seen({ vary: 'a' }), seen({ vary: 'b' }), 'a vary'))
    assertSameHeaders(seen({}), seen({}), 'the same answer')
  })
})
