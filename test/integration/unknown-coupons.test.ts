/**
 * Requests for coupon ids that do not exist must not cost a database query each,
 * in either mode: a storm of random ids is answered 404 from what the service
 * knows (the compatibility route in the original's shape), with at most a
 * handful of queries; an id past the largest safe integer is a 400, not a 404
 * naming a rounded id; and in Redis mode a coupon created on another node is
 * still found at once. Embedded mode runs on every dialect selected, Redis mode
 * on PostgreSQL.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DefaultQueryExecutor } from 'kysely'
import pg from 'pg'
import { DEFAULT_REFRESH_MS } from '../../src/service/known-coupons.js'
import { createCoupon } from '../helpers/app.js'
import { DIALECTS } from '../helpers/databases.js'
import { embedded, type ModeName, redisMode } from '../helpers/modes.js'
import type { Service } from '../helpers/redis-suite.js'
import { issueOnce } from '../helpers/storm.js'

const STORM = 3000
/** Open loop-like: many requests in flight at once, as from many clients. */
const CONCURRENCY = 500
/** The background refreshes of the one cached coupon, and slack. */
const A_HANDFUL = 5

interface QueryCounter {
  n: number
  restore(): void
}

/**
 * Does the query read the coupons table, other than the draw runner's look for
 * due draws? Only those count: the processes also query on their own meanwhile
 * (that look, the event sequencer's probe), whatever the requests ask.
 */
const readsCoupons = (text: unknown) =>
  typeof text === 'string' &&
  /\bfrom ["`]?coupons["`]?(?![_\w])/i.test(text) &&
  !/draw_at/.test(text)

/** Every query on coupons this process sends through Kysely (embedded: the only way it queries). */
function countKyselyQueries(): QueryCounter {
  const base = Object.getPrototypeOf(DefaultQueryExecutor.prototype) as {
    executeQuery: (...args: unknown[]) => unknown
  }
  const original = base.executeQuery
  const counter = {
    n: 0,
    restore: () => {
      base.executeQuery = original
    },
  }
  base.executeQuery = function (this: unknown, ...args: unknown[]) {
    const compiled = args[0] as { sql?: string } | undefined
    if (readsCoupons(compiled?.sql)) counter.n++
    return original.apply(this, args)
  }
  return counter
}

/** Queries on coupons sent by this process's services to PostgreSQL, however sent (Redis mode). */
function countServiceQueries(): QueryCounter {
  const proto = pg.Client.prototype as unknown as {
    query: (...args: unknown[]) => unknown
    connectionParameters?: { application_name?: string }
  }
  const original = proto.query
  const ours = new RegExp(`^firstcome \\w+ ${process.pid}$`)
  const counter = {
    n: 0,
    restore: () => {
      proto.query = original
    },
  }
  proto.query = function (this: typeof proto, ...args: unknown[]) {
    const [query] = args as [string | { text?: string } | undefined]
    const text = typeof query === 'string' ? query : query?.text
    if (ours.test(this.connectionParameters?.application_name ?? '') && readsCoupons(text))
      counter.n++
    return original.apply(this, args)
  }
  return counter
}

const COUNTERS = {
  embedded: countKyselyQueries,
  redis: countServiceQueries,
} satisfies Record<ModeName, () => QueryCounter>

async function request(
  s: Service,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: { code?: unknown; message?: unknown } }> {
  const res = await s.pool.request({
    method,
    path,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.statusCode, body: (await res.body.json()) as { code?: unknown } }
}

const MODES = [...DIALECTS.map(embedded), redisMode('postgres')]

for (const mode of MODES) {
  describe(`unknown coupon ids (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()

    it('a storm of random unknown ids costs a handful of queries, and is all 404', async (tc) => {
      const one = await suite.start({ connections: CONCURRENCY + 16 }, tc)
      const known = await createCoupon(one.app, { totalQuantity: null })
      assert.equal((await issueOnce(one.pool, known, 'warm')).status, 201)
      const counter = COUNTERS[mode.mode]()
      const answers: { what: string; status: number; code: unknown }[] = []
      const started = performance.now()
      try {
        let next = 0
        const lane = async () => {
          while (next < STORM) {
            const i = next++
            const id = known + 1 + Math.floor(Math.random() * 1e14)
            const kind = i % 5
            const r =
              kind === 0
                ? await request(one, 'POST', `/v1/coupons/${id}/issues`, { userId: `u${i}` })
                : kind === 1
                  ? await request(one, 'GET', `/v1/coupons/${id}/issues/u${i}`)
                  : kind === 2
                    ? await request(one, 'GET', `/v1/coupons/${id}/stats`)
                    : kind === 3
                      ? await request(one, 'GET', `/v1/coupons/${id}`)
                      : await request(one, 'POST', '/v1/issue', { userId: i + 1, couponId: id })
            answers.push({ what: `${kind} ${id}`, status: r.status, code: r.body.code })
          }
        }
        await Promise.all(Array.from({ length: CONCURRENCY }, lane))
      } finally {
        counter.restore()
      }
      const elapsed = performance.now() - started
      tc.diagnostic(
        `${answers.length} unknown ids in ${Math.round(elapsed)} ms: ${counter.n} queries`,
      )
      assert.equal(answers.length, STORM)
      for (const a of answers) {
        // The compatibility route answers in the original's shape (200, isSuccess false).
        if (a.what.startsWith('4 ')) assert.equal(a.status, 200, a.what)
        else assert.deepEqual([a.status, a.code], [404, 'COUPON_NOT_FOUND'], a.what)
      }
      // One read of the ids per refresh interval at most, however many ids are asked.
      const bound = Math.ceil(elapsed / DEFAULT_REFRESH_MS) + A_HANDFUL
      assert.ok(
        counter.n <= bound,
        `${counter.n} queries for ${STORM} unknown ids (bound ${bound})`,
      )
      assert.ok(counter.n <= STORM / 50, `${counter.n} queries for ${STORM} unknown ids`)
      assert.equal((await issueOnce(one.pool, known, 'after')).status, 201)
      assert.equal((await request(one, 'GET', `/v1/coupons/${known}/stats`)).status, 200)
    })

    it('an id past the largest safe integer is a 400 on every route', async (tc) => {
      const one = await suite.start({}, tc)
      for (const id of ['9007199254740993', '9007199254740992', '9999999999999999']) {
        const answers = [
          await request(one, 'POST', `/v1/coupons/${id}/issues`, { userId: 'u1' }),
          await request(one, 'GET', `/v1/coupons/${id}/issues/u1`),
          await request(one, 'GET', `/v1/coupons/${id}/stats`),
          await request(one, 'GET', `/v1/coupons/${id}`),
        ]
        for (const a of answers) {
          assert.equal(a.status, 400, `${id}: ${a.status} ${JSON.stringify(a.body)}`)
          assert.equal(a.body.code, 'VALIDATION_FAILED')
          assert.equal(typeof a.body.message, 'string')
        }
      }
    })

    // Several nodes share coupons only through Redis.
    if (mode.mode === 'redis')
      it('a coupon created on another node is found at once, even amid unknown ids', async (tc) => {
        const one = await suite.start({}, tc)
        const two = await suite.start({ worker: false }, tc)
        let storming = true
        const storm = (async () => {
          for (let i = 0; storming; i++) {
            await request(one, 'GET', `/v1/coupons/${1e12 + i}/stats`)
          }
        })()
        try {
          for (let i = 0; i < 10; i++) {
            const id = await createCoupon(two.app, { totalQuantity: 5 })
            const [issued, read] = await Promise.all([
              issueOnce(one.pool, id, `new-${i}`),
              request(one, 'GET', `/v1/coupons/${id}`),
            ])
            assert.equal(issued.status, 201, `coupon ${id}: ${issued.status} ${issued.code}`)
            assert.equal(read.status, 200, `coupon ${id}: ${read.status}`)
          }
        } finally {
          storming = false
          await storm
        }
      })
  })
}
