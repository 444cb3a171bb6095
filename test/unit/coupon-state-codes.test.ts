/**
 * Every coupon script answers the codes of src/coupon-state/codes.ts and no
 * other: each negative number a script returns is listed in its header under the
 * table's name for it, and each name in a header has the table's number.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { CODES } from '../../src/coupon-state/codes.js'
import { scripts } from '../../src/coupon-state/scripts.js'

const LUA = new URL('../../src/coupon-state/lua/', import.meta.url)
const files = readdirSync(LUA).filter((f) => f.endsWith('.lua'))
const byNumber = new Map<number, string>(Object.entries(CODES).map(([n, c]) => [c, n]))

/** header lines like `--   -2 ISSUE_NOT_STARTED ...` → number and name */
function headerCodes(source: string): Map<number, string> {
  const codes = new Map<number, string>()
  for (const m of source.matchAll(/^--\s+(-?\d+) ([A-Z][A-Z_]+)\b/gm))
    codes.set(Number(m[1]), m[2] as string)
  return codes
}

/** negative numbers the code (not the comments) returns or assigns as an outcome */
function codeLiterals(source: string): number[] {
  const code = source
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('--'))
    .join('\n')
  return [...code.matchAll(/(?:return|=)\s*(-\d+)\b/g)].map((m) => Number(m[1]))
}

describe('coupon script return codes', () => {
  it('the table gives each code one name', () => {
    assert.equal(byNumber.size, Object.keys(CODES).length)
  })

  it('every script file is a loaded script, and the other way round', () => {
    const loaded = Object.values(scripts).length
    assert.equal(files.length, loaded)
  })

  for (const file of files) {
    it(`${file} returns only the table's codes, named as in the table`, () => {
      const source = readFileSync(new URL(file, LUA), 'utf8')
      const header = headerCodes(source)
      for (const [number, name] of header) {
        assert.equal(CODES[name as keyof typeof CODES], number, `${file}: ${number} ${name}`)
      }
      for (const literal of codeLiterals(source)) {
        assert.ok(byNumber.has(literal), `${file} returns ${literal}, not in codes.ts`)
        assert.ok(header.has(literal), `${file} returns ${literal} without naming it in its header`)
      }
    })
  }
})
