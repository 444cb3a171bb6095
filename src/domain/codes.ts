/**
 * Partner codes (gift PINs, vouchers, barcodes): what a code may be, and codes
 * made up by the service. The winner of rank r gets code number r.
 *
 * A code is 1..128 characters of printable ASCII (U+0020..U+007E) that neither
 * begins nor ends with a space. So: no control characters (a tab, a line break
 * inside a quoted CSV field, a NUL), and no non-ASCII — uniqueness is then the
 * same byte comparison on every database, with no Unicode normalisation to make
 * two codes that look alike count as two, and a code reads the same on any till.
 * A space at either end is refused rather than trimmed: invisible in a
 * spreadsheet, it is almost always a paste error, and a code is given out as it
 * was uploaded.
 */
import { randomBytes } from 'node:crypto'
import { AppError } from './errors.js'

export const MAX_CODE_LENGTH = 128
/** codes one upload may carry (SPEC) */
export const MAX_CODES_PER_CALL = 1_000_000
/** length of a code the service makes up (`{"generate": n}`) */
export const GENERATED_CODE_LENGTH = 16

const VALID = /^[!-~](?:[ -~]{0,126}[!-~])?$/

/** Why the code cannot be a code, or null when it can. */
export function codeProblem(code: string): string | null {
  if (VALID.test(code)) return null
  if (code.length === 0) return 'is empty'
  if (code.length > MAX_CODE_LENGTH) return `is longer than ${MAX_CODE_LENGTH} characters`
  for (const ch of code) {
    const cp = ch.codePointAt(0) as number
    if (cp < 0x20 || cp === 0x7f) return `holds a control character (U+${hex(cp)})`
    if (cp > 0x7e) return `holds a character outside printable ASCII (U+${hex(cp)})`
  }
  return 'begins or ends with a space'
}

const hex = (cp: number) => cp.toString(16).toUpperCase().padStart(4, '0')

/** Crockford's base32: no I, L, O or U, so a code read aloud or off a till is unambiguous. */
export const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

/** Bytes of randomness per generated code: 16 characters × 5 bits. */
const CODE_BYTES = (GENERATED_CODE_LENGTH * 5) / 8

export type RandomSource = (bytes: number) => Buffer

/**
 * `n` codes of 16 Crockford base32 characters (80 bits each) from a CSPRNG.
 * Not checked for uniqueness here: the coupon's UNIQUE index is (see CodePool).
 */
export function generateCodes(n: number, random: RandomSource = randomBytes): string[] {
  const bytes = random(n * CODE_BYTES)
  const codes = new Array<string>(n)
  for (let i = 0; i < n; i++) codes[i] = encode(bytes, i * CODE_BYTES)
  return codes
}

/** Ten bytes as sixteen 5-bit digits, most significant first. */
function encode(bytes: Buffer, at: number): string {
  let out = ''
  let acc = 0
  let bits = 0
  for (let i = at; i < at + CODE_BYTES; i++) {
    acc = (acc << 8) | (bytes[i] as number)
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += CROCKFORD[(acc >> bits) & 31]
    }
    acc &= (1 << bits) - 1
  }
  return out
}

/** Codes per part of a CodeList. */
const PART = 10_000

/**
 * Codes in order, held compactly: every PART of them joined into one string by
 * line feeds (a code holds none), so a million codes are some twenty large
 * strings, not a million small ones and an array. Each code is checked as it is
 * added: a list holds only codes that can be codes. Read back in ranges
 * (`slice`), as an array of codes is.
 */
export class CodeList {
  readonly #parts: string[] = []
  #pending: string[] = []
  #length = 0

  get length(): number {
    return this.#length
  }

  /** Adds a code, or throws 400 VALIDATION_FAILED naming it by its number in the list. */
  push(code: string): void {
    const problem = codeProblem(code)
    if (problem) throw new AppError('VALIDATION_FAILED', `code #${this.#length + 1} ${problem}`)
    this.#pending.push(code)
    this.#length++
    if (this.#pending.length === PART) {
      this.#parts.push(this.#pending.join('\n'))
      this.#pending = []
    }
  }

  /** Codes number `from + 1` .. `to` (0-based, `to` excluded), as Array.prototype.slice. */
  slice(from = 0, to = this.#length): string[] {
    const end = Math.min(to, this.#length)
    const out: string[] = []
    for (let i = Math.max(0, from); i < end; ) {
      const p = Math.floor(i / PART)
      const codes = this.#part(p)
      const at = i - p * PART
      const take = Math.min(end - i, codes.length - at)
      for (let k = 0; k < take; k++) out.push(codes[at + k] as string)
      i += take
    }
    return out
  }

  /** Replaces code number `index + 1` (a generated code drawn again). */
  set(index: number, code: string): void {
    const problem = codeProblem(code)
    if (problem || index < 0 || index >= this.#length) throw new RangeError('no such code')
    const p = Math.floor(index / PART)
    if (p === this.#parts.length) {
      this.#pending[index - p * PART] = code
      return
    }
    const codes = this.#part(p)
    codes[index - p * PART] = code
    this.#parts[p] = codes.join('\n')
  }

  #part(p: number): string[] {
    return p < this.#parts.length ? (this.#parts[p] as string).split('\n') : this.#pending
  }
}
