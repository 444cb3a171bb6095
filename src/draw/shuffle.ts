/**
 * The opening draw, as a pure function of the seed and the entrants: no I/O, no
 * clock. docs/draw.md writes every step out byte for byte so anyone can
 * reimplement it; its test vector is checked against this file.
 *
 * 1. seed: 32 secret bytes; commitment = hex SHA-256(seed).
 * 2. pseudonym(userId) = hex HMAC-SHA256(key = seed, message = userId as UTF-8).
 * 3. entrants: the pseudonyms (lowercase hex), a set, in ascending byte order.
 * 4. entrantsDigest = hex SHA-256 of the entrant list: each pseudonym followed by
 *    one LF, in order (exactly the bytes of the public entrant list).
 * 5. K = HMAC-SHA256(key = seed, message = "firstcome-draw-v1 " + entrantsDigest).
 * 6. Fisher–Yates over positions 0..N-1, front to back, with indices from the
 *    stream of K (index-stream.ts); winners are the first min(quantity, N), rank
 *    r being position r-1.
 */
import { createHash, createHmac } from 'node:crypto'
import { IndexStream } from './index-stream.js'

export const DRAW_ALGORITHM = 'firstcome-draw-v1'
export const SEED_BYTES = 32
const HEX_64 = /^[0-9a-f]{64}$/

export const isHex64 = (value: string): boolean => HEX_64.test(value)

/** The seed from its 64 lowercase hex digits. */
export function seedFromHex(hex: string): Buffer {
  if (!isHex64(hex)) throw new RangeError('a seed is 64 lowercase hex digits')
  return Buffer.from(hex, 'hex')
}

function checkSeed(seed: Uint8Array): void {
  if (seed.length !== SEED_BYTES) throw new RangeError(`a seed is ${SEED_BYTES} bytes`)
}

/** hex SHA-256 of the seed's bytes: shown before the draw, checked after it. */
export function commitmentOf(seed: Uint8Array): string {
  checkSeed(seed)
  return createHash('sha256').update(seed).digest('hex')
}

/** What the public list shows for a user: nobody reads the user id off it. */
export function pseudonymOf(seed: Uint8Array, userId: string): string {
  checkSeed(seed)
  return createHmac('sha256', seed).update(userId, 'utf8').digest('hex')
}

/** The entrants of a set of users: their pseudonyms, each once, sorted. */
export function entrantsOf(seed: Uint8Array, userIds: Iterable<string>): string[] {
  const pseudonyms = new Set<string>()
  for (const userId of userIds) pseudonyms.add(pseudonymOf(seed, userId))
  // The default sort compares UTF-16 code units: for ASCII hex, byte order.
  return [...pseudonyms].sort()
}

/** The public entrant list's text: each pseudonym and a line feed. */
export function entrantListText(entrants: readonly string[]): string {
  return entrants.length === 0 ? '' : `${entrants.join('\n')}\n`
}

const DIGEST_CHUNK_LINES = 4096

/**
 * entrantsDigest, fed one pseudonym at a time in the list's order (so a list read
 * in pages, e.g. from a sorted set, needs no second copy). Throws on a pseudonym
 * that is not 64 lowercase hex digits or not above the one before it: an
 * unsorted or repeated entrant is a bug, not an outcome.
 */
export class EntrantsDigest {
  readonly #hash = createHash('sha256')
  #chunk: string[] = []
  #last = ''
  count = 0

  add(pseudonym: string): void {
    if (!isHex64(pseudonym)) throw new RangeError(`entrant ${this.count + 1} is not a pseudonym`)
    if (pseudonym <= this.#last) {
      throw new RangeError(`entrant ${this.count + 1} is not above the one before it`)
    }
    this.#last = pseudonym
    this.#chunk.push(pseudonym)
    this.count++
    if (this.#chunk.length === DIGEST_CHUNK_LINES) this.#flush()
  }

  digest(): string {
    this.#flush()
    return this.#hash.digest('hex')
  }

  #flush(): void {
    if (this.#chunk.length > 0) this.#hash.update(entrantListText(this.#chunk))
    this.#chunk = []
  }
}

export function entrantsDigestOf(entrants: readonly string[]): string {
  const digest = new EntrantsDigest()
  for (const pseudonym of entrants) digest.add(pseudonym)
  return digest.digest()
}

/** The shuffle's key: the seed and the whole entrant set, through their digest. */
export function shuffleKey(seed: Uint8Array, entrantsDigest: string): Buffer {
  checkSeed(seed)
  if (!isHex64(entrantsDigest)) throw new RangeError('entrantsDigest is 64 lowercase hex digits')
  return createHmac('sha256', seed).update(`${DRAW_ALGORITHM} ${entrantsDigest}`, 'ascii').digest()
}

/**
 * The shuffled order as indices into the sorted entrants, lazily: the i-th value
 * is rank i+1. Fisher–Yates front to back over a virtual array in which only the
 * positions a swap has touched are stored, so the first n cost O(n) time and
 * memory whatever N is. Stopping after n gives the full permutation's first n:
 * later steps never touch earlier positions.
 */
export function* shuffledIndices(key: Uint8Array, count: number): Generator<number> {
  const stream = new IndexStream(key)
  const moved = new Map<number, number>()
  for (let i = 0; i < count; i++) {
    const here = moved.get(i) ?? i
    if (i === count - 1) {
      yield here
      return
    }
    const j = i + stream.next(count - i)
    const there = j === i ? here : (moved.get(j) ?? j)
    moved.set(j, here)
    moved.delete(i)
    yield there
  }
}

export interface DrawResult {
  entrantsDigest: string
  /** pseudonyms, rank 1 first */
  winners: string[]
}

/** The draw: the first min(quantity, entrants) of the shuffled order. */
export function drawWinners(
  seed: Uint8Array,
  entrants: readonly string[],
  quantity: number,
): DrawResult {
  const entrantsDigest = entrantsDigestOf(entrants)
  return { entrantsDigest, winners: winnersOf(seed, entrants, entrantsDigest, quantity) }
}

/**
 * The winners of entrants whose digest is already known (a list read and hashed
 * as it came in): `drawWinners` without a second pass over the list.
 */
export function winnersOf(
  seed: Uint8Array,
  entrants: readonly string[],
  entrantsDigest: string,
  quantity: number,
): string[] {
  if (!Number.isSafeInteger(quantity) || quantity < 0) {
    throw new RangeError('quantity is a non-negative integer')
  }
  const winners: string[] = []
  const n = Math.min(quantity, entrants.length)
  if (n === 0) return winners
  for (const index of shuffledIndices(shuffleKey(seed, entrantsDigest), entrants.length)) {
    // index < entrants.length by construction
    winners.push(entrants[index] as string)
    if (winners.length === n) break
  }
  return winners
}

/** Every entrant in drawn order: the whole permutation (tests, small draws). */
export function shuffledEntrants(seed: Uint8Array, entrants: readonly string[]): string[] {
  return drawWinners(seed, entrants, entrants.length).winners
}
