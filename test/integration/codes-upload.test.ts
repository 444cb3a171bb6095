/**
 * Uploading partner codes (SPEC "Partner codes"), on each dialect: JSON, CSV and
 * generated codes appended in order; every refusal answered with its code and
 * nothing of the call stored; two uploads racing past the quantity; the route's
 * own body limit while the others keep theirs.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Dialect } from '../../src/config.js'
import { CROCKFORD } from '../../src/domain/codes.js'
import { CodePool } from '../../src/service/code-pool.js'
import {
  admin,
  createCoupon,
  patchCoupon,
  service,
  startApp,
  type TestApp,
} from '../helpers/app.js'
import { storedCodes, uploadCodes, uploadCsv } from '../helpers/codes.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'

/** The ten bytes a generated code is made of. */
function crockfordBytes(code: string): Buffer {
  let n = 0n
  for (const ch of code) n = (n << 5n) | BigInt(CROCKFORD.indexOf(ch))
  return Buffer.from(n.toString(16).padStart(20, '0'), 'hex')
}

function suite(dialect: Dialect) {
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
  const stored = (id: number) => storedCodes(t.container.database.db, id)
  const refused = async (
    res: { statusCode: number; json(): { code: string; message: string } },
    status: number,
    code: string,
    message?: RegExp,
  ) => {
    assert.equal(res.statusCode, status, JSON.stringify(res.json()))
    assert.equal(res.json().code, code)
    if (message) assert.match(res.json().message, message)
  }

  it('appends JSON codes in order and answers the total', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 10 })
    const first = await uploadCodes(t.app, id, { codes: ['A-1', 'b 2', 'x"y,z'] })
    assert.equal(first.statusCode, 200, first.body)
    assert.deepEqual(first.json(), { codes: 3 })
    const second = await uploadCodes(t.app, id, { codes: ['~!@#$%^&*()'] })
    assert.deepEqual(second.json(), { codes: 4 })
    assert.deepEqual(await stored(id), {
      codes: ['A-1', 'b 2', 'x"y,z', '~!@#$%^&*()'],
      seqs: [1, 2, 3, 4],
      pool: 4,
    })
    const count = await t.app.inject({ url: `/v1/coupons/${id}/codes`, headers: admin })
    assert.deepEqual(count.json(), { codes: 4 })
  })

  it('reads CSV: LF or CRLF, quoted fields, a BOM, a header only when the type says so', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 20 })
    const plain = await uploadCsv(t.app, id, 'P1\nP2\r\n"P,3"\n"P""4"\r\nP5\n')
    assert.equal(plain.statusCode, 200, plain.body)
    const bom = await uploadCsv(t.app, id, '\ufeffB1\r\nB2')
    assert.equal(bom.statusCode, 200, bom.body)
    const header = await uploadCsv(
      t.app,
      id,
      'code\nH1\n',
      'text/csv; header=present; charset=utf-8',
    )
    assert.deepEqual(header.json(), { codes: 8 })
    assert.deepEqual((await stored(id)).codes, ['P1', 'P2', 'P,3', 'P"4', 'P5', 'B1', 'B2', 'H1'])
  })

  it('generates n codes of 16 Crockford base32 characters, all different', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 5000 })
    await uploadCodes(t.app, id, { codes: ['MINE'] })
    const res = await uploadCodes(t.app, id, { generate: 4000 })
    assert.deepEqual(res.json(), { codes: 4001 })
    const { codes, seqs } = await stored(id)
    assert.equal(codes[0], 'MINE')
    const made = codes.slice(1)
    assert.equal(new Set(made).size, 4000)
    const alphabet = new RegExp(`^[${CROCKFORD}]{16}$`)
    for (const c of made) assert.match(c, alphabet)
    assert.deepEqual(
      seqs,
      Array.from({ length: 4001 }, (_, i) => i + 1),
    )
  })

  it('draws a generated code again where it collides, in the call or with a stored one', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 10 })
    await uploadCodes(t.app, id, { codes: ['ZZZZZZZZZZZZZZZZ'] })
    const draws = [
      ['0000000000000000', '0000000000000000', 'ZZZZZZZZZZZZZZZZ'],
      ['1111111111111111', 'ZZZZZZZZZZZZZZZZ'],
      ['2222222222222222'],
    ]
    const pool = new CodePool({
      db: t.container.database.db,
      random: () => Buffer.concat((draws.shift() ?? []).map(crockfordBytes)),
    })
    assert.equal(await pool.add(id, { generate: 3 }), 4)
    assert.equal(draws.length, 0, 'drawn three times')
    assert.deepEqual(await stored(id), {
      codes: ['ZZZZZZZZZZZZZZZZ', '0000000000000000', '1111111111111111', '2222222222222222'],
      seqs: [1, 2, 3, 4],
      pool: 4,
    })
  })

  it('takes any number of codes on an unlimited coupon', async () => {
    const id = await createCoupon(t.app, { totalQuantity: null })
    assert.deepEqual((await uploadCodes(t.app, id, { generate: 300 })).json(), { codes: 300 })
  })

  it('refuses bad codes and bad bodies with 400/415, storing nothing', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 100 })
    await uploadCodes(t.app, id, { codes: ['KEEP'] })
    const cases: [unknown, RegExp][] = [
      [{ codes: ['ok', ''] }, /code #2 is empty/],
      [{ codes: ['a\tb'] }, /control character \(U\+0009\)/],
      [{ codes: ['a\u0000b'] }, /control character \(U\+0000\)/],
      [{ codes: ['a\u007fb'] }, /control character \(U\+007F\)/],
      [{ codes: ['쿠폰'] }, /outside printable ASCII \(U\+CFE0\)/],
      [{ codes: [' lead'] }, /space/],
      [{ codes: ['trail '] }, /space/],
      [{ codes: ['x'.repeat(129)] }, /longer than 128/],
      [{ codes: [] }, /none given/],
      [{ codes: 'A' }, /./],
      [{ codes: [1] }, /./],
      [{ codes: ['A'], generate: 1 }, /either codes or generate/],
      [{}, /either codes or generate/],
      [{ generate: 0 }, /./],
      [{ generate: 1_000_001 }, /./],
      [{ codes: ['A'], extra: 1 }, /./],
      [['A'], /./],
    ]
    for (const [body, message] of cases) {
      await refused(await uploadCodes(t.app, id, body), 400, 'VALIDATION_FAILED', message)
    }
    const csvCases: [string, RegExp][] = [
      ['A\n\nB\n', /code #2 is empty/],
      ['A\nB,C\n', /code #2 has 2 fields/],
      ['"A\nB"\n', /control character \(U\+000A\)/],
      ['A\rB\n', /control character \(U\+000D\)/],
      ['"unclosed\n', /not valid CSV/],
      ['"A"x\n', /not valid CSV/],
      ['A\n\n', /code #2 is empty/],
    ]
    for (const [csv, message] of csvCases) {
      await refused(await uploadCsv(t.app, id, csv), 400, 'VALIDATION_FAILED', message)
    }
    for (const type of ['text/plain', 'application/xml', 'application/octet-stream']) {
      await refused(await uploadCsv(t.app, id, 'A\n', type), 415, 'UNSUPPORTED_MEDIA_TYPE')
    }
    assert.deepEqual(await stored(id), { codes: ['KEEP'], seqs: [1], pool: 1 })
  })

  it('refuses duplicates (in the call, against the stored ones) with 409 DUPLICATE_CODE', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 100_000 })
    await uploadCodes(t.app, id, { codes: ['S1', 'S2'] })
    await refused(
      await uploadCodes(t.app, id, { codes: ['N1', 'S2'] }),
      409,
      'DUPLICATE_CODE',
      /code #2 "S2" is already in the coupon \(code number 2\)/,
    )
    await refused(
      await uploadCsv(t.app, id, 'N1\nN2\nN1\n'),
      409,
      'DUPLICATE_CODE',
      /code #3 "N1" appears twice in this call \(also code #1\)/,
    )
    // Far apart: in different INSERT statements of one transaction.
    const many = Array.from({ length: 30_000 }, (_, i) => `M${i}`)
    many[25_000] = 'M7'
    await refused(
      await uploadCodes(t.app, id, { codes: many }),
      409,
      'DUPLICATE_CODE',
      /code #25001 "M7" appears twice in this call \(also code #8\)/,
    )
    // Codes differ by case: two codes.
    assert.equal((await uploadCodes(t.app, id, { codes: ['s1'] })).statusCode, 200)
    assert.deepEqual(await stored(id), { codes: ['S1', 'S2', 's1'], seqs: [1, 2, 3], pool: 3 })
  })

  it('never holds more codes than totalQuantity: 409 TOO_MANY_CODES, and PATCH cannot go below', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 5 })
    await uploadCodes(t.app, id, { codes: ['1', '2', '3'] })
    await refused(
      await uploadCodes(t.app, id, { codes: ['4', '5', '6'] }),
      409,
      'TOO_MANY_CODES',
      /holds 3 codes and its totalQuantity is 5/,
    )
    await refused(await uploadCodes(t.app, id, { generate: 3 }), 409, 'TOO_MANY_CODES')
    await refused(await patchCoupon(t.app, id, { totalQuantity: 2 }), 409, 'TOO_MANY_CODES')
    assert.equal((await patchCoupon(t.app, id, { totalQuantity: 3 })).statusCode, 200)
    await refused(await uploadCodes(t.app, id, { codes: ['4'] }), 409, 'TOO_MANY_CODES')
    assert.equal((await patchCoupon(t.app, id, { totalQuantity: null })).statusCode, 200)
    assert.deepEqual((await uploadCodes(t.app, id, { codes: ['4'] })).json(), { codes: 4 })
    assert.deepEqual(await stored(id), { codes: ['1', '2', '3', '4'], seqs: [1, 2, 3, 4], pool: 4 })
  })

  it('lets exactly one of two racing uploads past the quantity', async () => {
    for (let round = 0; round < 3; round++) {
      const id = await createCoupon(t.app, { totalQuantity: 3000 })
      const a = Array.from({ length: 2000 }, (_, i) => `A${round}-${i}`)
      const b = Array.from({ length: 2000 }, (_, i) => `B${round}-${i}`)
      const answers = await Promise.all([
        uploadCodes(t.app, id, { codes: a }),
        uploadCodes(t.app, id, { codes: b }),
      ])
      const statuses = answers.map((r) => r.statusCode).sort()
      // The loser waited for the winner's lock (409), or gave up waiting (503).
      assert.equal(statuses[0], 200, answers.map((r) => r.body).join(' | '))
      assert.ok([409, 503].includes(statuses[1] as number), String(statuses[1]))
      const { codes, pool } = await stored(id)
      assert.equal(pool, 2000)
      assert.ok(
        codes.every((c) => c.startsWith(codes[0]?.[0] ?? '?')),
        'one upload, whole',
      )
    }
  })

  it('takes uploads sent at once in turns: each stored whole, numbered on', async () => {
    const N = 30_000
    for (const first of [true, false]) {
      const id = await createCoupon(t.app, { totalQuantity: 100_000 })
      if (!first) assert.equal((await uploadCodes(t.app, id, { codes: ['P-0'] })).statusCode, 200)
      const calls = ['X', 'Y', 'Z'].map((p) => Array.from({ length: N }, (_, i) => `${p}-${i}`))
      const answers = await Promise.all(calls.map((codes) => uploadCodes(t.app, id, { codes })))
      assert.deepEqual(
        answers.map((r) => r.statusCode),
        [200, 200, 200],
        answers.map((r) => r.body).join(' | '),
      )
      const { codes, seqs } = await stored(id)
      const before = first ? 0 : 1
      assert.deepEqual(
        seqs,
        Array.from({ length: 3 * N + before }, (_, i) => i + 1),
      )
      // Each call's codes in one run, in its order.
      for (const call of calls) {
        const at = codes.indexOf(call[0] as string)
        assert.deepEqual(codes.slice(at, at + N), call)
      }
    }
  })

  it('answers 401 without the admin token and 404 for an unknown coupon', async () => {
    const id = await createCoupon(t.app)
    await refused(await uploadCodes(t.app, id, { codes: ['A'] }, {}), 401, 'UNAUTHORIZED')
    await refused(await uploadCodes(t.app, id, { codes: ['A'] }, service), 401, 'UNAUTHORIZED')
    await refused(await uploadCodes(t.app, 999_999, { codes: ['A'] }), 404, 'COUPON_NOT_FOUND')
    const count = await t.app.inject({ url: '/v1/coupons/999999/codes', headers: admin })
    await refused(count, 404, 'COUPON_NOT_FOUND')
    assert.equal((await stored(id)).pool, 0)
  })

  it('takes a large body on this route only; every other route keeps its 16 KiB', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 100_000 })
    const codes = Array.from({ length: 50_000 }, (_, i) => `LARGE-BODY-${i}`)
    const csv = await uploadCsv(t.app, id, `${codes.join('\n')}\n`)
    assert.equal(csv.statusCode, 200, csv.body)
    assert.deepEqual(csv.json(), { codes: 50_000 })
    const big = JSON.stringify({ title: 'x'.repeat(20_000) })
    const other = await t.app.inject({
      method: 'PATCH',
      url: `/v1/coupons/${id}`,
      headers: { ...admin, 'content-type': 'application/json' },
      payload: big,
    })
    assert.equal(other.statusCode, 413)
    assert.equal(other.json().code, 'PAYLOAD_TOO_LARGE')
    const issue = await t.app.inject({
      method: 'POST',
      url: `/v1/coupons/${id}/issues`,
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ userId: 'u', pad: 'x'.repeat(20_000) }),
    })
    assert.equal(issue.statusCode, 413)
    // CSV is this route's alone.
    const csvElsewhere = await t.app.inject({
      method: 'POST',
      url: '/v1/coupons',
      headers: { ...admin, 'content-type': 'text/csv' },
      payload: 'a\n',
    })
    assert.equal(csvElsewhere.statusCode, 415)
  })
}

for (const dialect of DIALECTS) {
  describe(
    `partner code uploads on ${dialect}`,
    {
      skip: await skipUnlessDialect(dialect),
    },
    () => suite(dialect),
  )
}
