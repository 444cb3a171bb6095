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
