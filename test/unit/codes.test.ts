/**
 * Partner codes without a database: what a code may be, the codes the service
 * makes up, a CSV body read into codes, and the export's CSV (quoting, the
 * spreadsheet guard, and the merge of QUEUED wins by rank).
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { parse } from 'csv-parse/sync'
import {
  CodeList,
  CROCKFORD,
  codeProblem,
  GENERATED_CODE_LENGTH,
  generateCodes,
} from '../../src/domain/codes.js'
import { codesFromCsv, hasHeader } from '../../src/http/csv-codes.js'
import { CSV_HEADER, csvRows, guardFormula } from '../../src/http/winners-csv.js'
import type { ExportRow } from '../../src/service/winners-export.js'

describe('a partner code', () => {
  it('is 1..128 printable ASCII characters, no space at either end', () => {
    for (const ok of ['a', '0', '~', 'A B', 'x'.repeat(128), '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'])
      assert.equal(codeProblem(ok), null, ok)
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['x'.repeat(129), /longer than 128/],
      ['a\nb', /control character \(U\+000A\)/],
      ['\u001b[31m', /control character \(U\+001B\)/],
      ['a\u007f', /control character \(U\+007F\)/],
      ['café', /outside printable ASCII \(U\+00E9\)/],
      ['😀', /outside printable ASCII \(U\+1F600\)/],
      ['a\u00a0b', /outside printable ASCII \(U\+00A0\)/],
      [' a', /space/],
      ['a ', /space/],
      [' ', /space/],
    ]
    for (const [code, problem] of cases) assert.match(codeProblem(code) ?? 'valid', problem, code)
  })

  it('is made up as 16 Crockford base32 characters, 5 bits each, most significant first', () => {
    // Ten zero bytes, then ten 0xFF, then 0x00 0x44 0x32 0x14 0xC7 0x42 0x54 0xB6 0x35 0xCF.
    const bytes = Buffer.concat([
      Buffer.alloc(10),
      Buffer.alloc(10, 0xff),
      Buffer.from('00443214c74254b635cf', 'hex'),
    ])
    const codes = generateCodes(3, (n) => {
      assert.equal(n, 30)
      return bytes
    })
    assert.deepEqual(codes, ['0000000000000000', 'ZZZZZZZZZZZZZZZZ', '0123456789ABCDEF'])
    const random = generateCodes(1000)
    assert.equal(new Set(random).size, 1000)
    for (const c of random) {
      assert.equal(c.length, GENERATED_CODE_LENGTH)
      for (const ch of c) assert.ok(CROCKFORD.includes(ch), c)
      assert.equal(codeProblem(c), null)
    }
  })
})

describe('a list of codes', () => {
  it('gives back any range in order, across its parts, and takes a code replaced', () => {
    const list = new CodeList()
    const codes = Array.from({ length: 25_003 }, (_, i) => `C-${i}`)
    for (const c of codes) list.push(c)
    assert.equal(list.length, codes.length)
    assert.deepEqual(list.slice(), codes)
    for (const [from, to] of [
      [0, 1],
      [9_999, 10_001],
      [5, 25_003],
      [19_990, 30_000],
      [25_002, 25_003],
      [7, 7],
    ] as const)
      assert.deepEqual(list.slice(from, to), codes.slice(from, to), `${from}..${to}`)
    list.set(10_000, 'NEW-A')
    list.set(25_001, 'NEW-B')
    codes[10_000] = 'NEW-A'
    codes[25_001] = 'NEW-B'
    assert.deepEqual(list.slice(), codes)
  })

  it('refuses a code that cannot be one, naming its number', () => {
    const list = new CodeList()
    list.push('A')
    assert.throws(() => list.push('a\nb'), /code #2 holds a control character/)
    assert.throws(() => list.push(''), /code #2 is empty/)
    assert.equal(list.length, 1)
  })
})

describe('a CSV body of codes', () => {
  const read = async (text: string | Buffer, header = false, limitBytes = 1 << 20) =>
    (await codesFromCsv(Readable.from([Buffer.from(text)]), { header, limitBytes })).slice()

  it('reads one code a record, LF or CRLF, quoted or not, with or without a last line break', async () => {
    assert.deepEqual(await read('a\nb\r\n"c,d"\n"e""f"\n'), ['a', 'b', 'c,d', 'e"f'])
    assert.deepEqual(await read('a\nb'), ['a', 'b'])
    assert.deepEqual(await read('\ufeffa\n'), ['a'])
    assert.deepEqual(await read('code\na\n', true), ['a'])
  })

  it('judges each code as it reads it, naming it by its number', async () => {
    await assert.rejects(read('a\n"x\ny"\n'), /code #2 holds a control character \(U\+000A\)/)
    await assert.rejects(read('a\n\nb\n'), /code #2 is empty/, 'an empty line is an empty code')
    await assert.rejects(read('h\na\n b\n', true), /code #2 begins or ends with a space/)
  })

  it('refuses what is not one code a line, or not CSV', async () => {
    await assert.rejects(read('a\nb,c\n'), /code #2 has 2 fields/)
    await assert.rejects(read('"open\n'), /not valid CSV/)
    await assert.rejects(read('"a"b\n'), /not valid CSV/)
    await assert.rejects(read(`${'x'.repeat(1000)}\n`), /not valid CSV/)
    await assert.rejects(read('a\n'.repeat(100), false, 50), { code: 'PAYLOAD_TOO_LARGE' })
  })

  it('knows a header from the type', () => {
    assert.equal(hasHeader('text/csv; header=present'), true)
    assert.equal(hasHeader('text/csv;charset=utf-8; HEADER="present"'), true)
    assert.equal(hasHeader('text/csv; header=absent'), false)
    assert.equal(hasHeader('text/csv'), false)
    assert.equal(hasHeader(undefined), false)
  })
})

describe("the winners' CSV", () => {
  const at = new Date('2026-11-24T03:00:00.000Z')
  const row = (over: Partial<ExportRow>): ExportRow => ({
    rank: 1,
    userId: 'u',
    state: 'ISSUED',
    issuedAt: at,
    usedAt: null,
    orderId: null,
    code: null,
    ...over,
  })

  it('guards a value a spreadsheet would take for a formula, and reverses exactly', () => {
    for (const v of ['=1+1', '+1', '-42', '@SUM(A1)', '\tx', '\rx', "'=x", "'"])
      assert.equal(guardFormula(v), `'${v}`)
    for (const v of ['42', 'a=b', 'x-1', 'A@b', ' =x', '']) assert.equal(guardFormula(v), v)
  })

  it('quotes per RFC 4180 and writes CRLF; nulls are empty', () => {
    const text = csvRows([
      row({ rank: 1, userId: '-42', code: '=HYPERLINK("x")' }),
      row({ rank: 2, userId: '@a', state: 'USED', usedAt: at, orderId: 'o-1', code: 'a,b' }),
      row({ rank: 3, code: 'has\r\nbreak' }),
    ])
    const iso = at.toISOString()
    assert.equal(
      text,
      `1,'-42,ISSUED,${iso},,,"'=HYPERLINK(""x"")"\r\n` +
        `2,'@a,USED,${iso},${iso},o-1,"a,b"\r\n` +
        `3,u,ISSUED,${iso},,,"has\r\nbreak"\r\n`,
    )
    const records = parse(CSV_HEADER + text, { record_delimiter: '\r\n' }) as string[][]
    assert.deepEqual(records[0], [
      'rank',
      'userId',
      'state',
      'issuedAt',
      'usedAt',
      'orderId',
      'code',
    ])
    assert.deepEqual(
      records.slice(1).map((r) => r[6]),
      ['\'=HYPERLINK("x")', 'a,b', 'has\r\nbreak'],
    )
  })
})
