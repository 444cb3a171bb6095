/**
 * The winners' export, `GET /v1/coupons/{id}/issues.csv` (admin): every win by
 * rank with its state and partner code, RFC 4180 quoting and the spreadsheet
 * guard, as a download. Embedded on each dialect (every win a row), and in Redis
 * mode with wins still QUEUED merged in by rank (one of them spent, so both a
 * row and a queued entry: listed once, as the row).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Dialect } from '../../src/config.js'
import {
  createCoupon,
  ISO_UTC,
  requestIssue,
  service,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import { exportCsv, parseCsvLines, uploadCodes } from '../helpers/codes.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { waitFor } from '../helpers/storm.js'
import { issueStatus, useCoupon } from '../helpers/use.js'

const HEADER = ['rank', 'userId', 'state', 'issuedAt', 'usedAt', 'orderId', 'code']
/** Codes a spreadsheet would take for formulas, or that need quoting (one per user: the codes are the limit). */
const CODES = ['=HYPERLINK("http://x")', '+1-2', 'a,b', '"quoted"', "'=already", 'plain', 'last']
/** Users whose ids begin with a guarded character, and plain ones. */
const USERS = ['-42', '@ann', 'bob', 'carol', 'dave', 'erin', 'frank']

async function wins(app: FastifyInstance, id: number, users: readonly string[]) {
  for (const u of users) assert.equal((await requestIssue(app, id, u)).statusCode, 201)
}

/** The export's rows (header checked), without the instants, which are checked for shape. */
async function exported(app: FastifyInstance, id: number) {
  const res = await exportCsv(app, id)
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8')
  assert.equal(
    res.headers['content-disposition'],
    `attachment; filename="coupon-${id}-winners.csv"`,
  )
  assert.ok(res.body.endsWith('\r\n'))
  const [header, ...rows] = parseCsvLines(res.body)
  assert.deepEqual(header, HEADER)
  return {
    raw: res.body,
    rows: rows.map(([rank, user, state, issuedAt, usedAt, order, code]) => {
      assert.match(issuedAt ?? '', ISO_UTC)
      if (state === 'USED') assert.match(usedAt ?? '', ISO_UTC)
      else assert.equal(usedAt, '')
      return [rank, user, state, order, code]
    }),
  }
}

/** Row of rank r as exported: guarded userId, state, orderId, guarded code r. */
const expectedRow = (r: number, state: string, order = '') => {
  const guard = (v: string) => (/^[=+\-@\t\r']/.test(v) ? `'${v}` : v)
  const code = CODES[r - 1]
  return [
    String(r),
    guard(USERS[r - 1] as string),
    state,
    guard(order),
    code === undefined ? '' : guard(code),
  ]
}

function embedded(dialect: Dialect) {
  let t: TestApp
  let url: string
  before(async () => {
    url = await createDatabaseUrl(dialect)
    t = await startApp({ databaseUrl: url })
  })
  after(async () => {
    await t?.close()
    await dropDatabaseUrl(url)
  })

  it('lists every win by rank with its state and code, quoted and guarded', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 10 })
    await uploadCodes(t.app, id, { codes: CODES })
    await wins(t.app, id, USERS)
    const spend = await useCoupon(t.app, id, 'bob', { orderId: '-order-1', orderAmount: 200_000 })
    assert.equal(spend.statusCode, 200)
    const { raw, rows } = await exported(t.app, id)
    assert.deepEqual(
      rows,
      USERS.map((_, i) =>
        expectedRow(i + 1, i === 2 ? 'USED' : 'ISSUED', i === 2 ? '-order-1' : ''),
      ),
    )
    // The bytes, for the cases a reader gets wrong: quotes doubled, guard inside quotes.
    assert.ok(raw.includes(`,"'=HYPERLINK(""http://x"")"\r\n`), raw)
    assert.ok(raw.includes(`,'-42,ISSUED,`))
    assert.ok(raw.includes(`,"""quoted"""\r\n`))
    assert.ok(raw.includes(`,''=already\r\n`))
    assert.ok(raw.includes(`\r\n2,'@ann,ISSUED,`))
    assert.ok(raw.includes(`,'+1-2\r\n`))
    assert.ok(raw.includes(`,bob,USED,`) && raw.includes(`,'-order-1,"a,b"\r\n`))
  })

  it('answers a coupon without wins with the header alone; 404 unknown; 401 without admin', async () => {
    const id = await createCoupon(t.app)
    assert.equal((await exportCsv(t.app, id)).body, `${HEADER.join(',')}\r\n`)
    assert.equal((await exportCsv(t.app, 987_654)).json().code, 'COUPON_NOT_FOUND')
    for (const headers of [{}, service]) {
      const res = await exportCsv(t.app, id, headers)
      assert.equal(res.statusCode, 401)
      assert.equal(res.json().code, 'UNAUTHORIZED')
    }
  })
}

for (const dialect of DIALECTS) {
  describe(
    `winners' export, embedded on ${dialect}`,
    {
      skip: await skipUnlessDialect(dialect),
    },
    () => embedded(dialect),
  )
}

const REDIS_DIALECTS = DIALECTS.filter((d): d is Exclude<Dialect, 'sqlite'> => d !== 'sqlite')
for (const dialect of REDIS_DIALECTS) {
  describe(`winners' export, Redis mode on ${dialect}`, {
    skip: await skipUnlessRedisSuite({ dialect }),
  }, () => {
    const suite = redisSuite({ dialect })

    it('merges the QUEUED wins in by rank; a spent one is listed once, as its row', async (t) => {
      const s = await suite.start({ worker: true }, t)
      const id = await createCoupon(s.app, { totalQuantity: 10 })
      await uploadCodes(s.app, id, { codes: CODES })
      await wins(s.app, id, USERS.slice(0, 2))
      await waitFor(
        'two rows',
        async () => (await issueStatus(s.app, id, '@ann')).json().state === 'ISSUED',
      )
      await s.stopWorker()
      await wins(s.app, id, USERS.slice(2))
      // A spend writes the QUEUED win's row at once; its stream entry stays.
      const spend = await useCoupon(s.app, id, 'dave', { orderId: 'o-4', orderAmount: 200_000 })
      assert.equal(spend.statusCode, 200)
      const states = ['ISSUED', 'ISSUED', 'QUEUED', 'QUEUED', 'USED', 'QUEUED', 'QUEUED']
      const expected = states.map((state, i) =>
        expectedRow(i + 1, state, state === 'USED' ? 'o-4' : ''),
      )
      assert.deepEqual((await exported(s.app, id)).rows, expected)
      await s.startWorker()
      await waitFor(
        'every win a row',
        async () => (await issueStatus(s.app, id, 'frank')).json().state === 'ISSUED',
      )
      assert.deepEqual(
        (await exported(s.app, id)).rows,
        expected.map((row) =>
          row[2] === 'QUEUED' ? [row[0], row[1], 'ISSUED', row[3], row[4]] : row,
        ),
      )
    })
  })
}
