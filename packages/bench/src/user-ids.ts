/**
 * Which user each request speaks for, and how many distinct users tried. The
 * invariant "wins = min(quantity, distinct users who tried)" needs the distinct
 * count, not the request count: with random ids, users repeat.
 */

export interface UserIdRange {
  /** inclusive */
  min: number
  /** inclusive */
  max: number
}

export interface IdSource {
  next(): number
  /** every id is new: distinct users = requests, no set needed */
  readonly unique: boolean
}

/**
 * Uniform random ids in this client process's share of the range. With several
 * processes each draws from its own slice ([min, max] cut in `of` equal parts);
 * equal connections per process make the union uniform over the whole range, and
 * the distinct counts of the processes simply add up.
 */
export function randomIds(range: UserIdRange, part: number, of: number): IdSource {
  const size = range.max - range.min + 1
  const lo = range.min + Math.floor((part * size) / of)
  const hi = range.min + Math.floor(((part + 1) * size) / of) - 1
  const span = hi - lo + 1
  return { unique: false, next: () => lo + Math.floor(Math.random() * span) }
}

/** A new user on every request: `start + part`, then every `of`-th id after it. */
export function sequentialIds(start: number, part: number, of: number): IdSource {
  let next = start + part
  return {
    unique: true,
    next() {
      const id = next
      next += of
      return id
    },
  }
}

/** Bits up to this many ids (32 MiB); a wider range falls back to a Set. */
const MAX_BITSET_IDS = 2 ** 28

/** Counts distinct ids seen in a known range: a bitset, or a Set when the range is huge. */
export class DistinctIds {
  readonly #min: number
  readonly #bits: Uint8Array | null
  readonly #set: Set<number> | null
  #count = 0

  constructor(range: UserIdRange) {
    const size = range.max - range.min + 1
    this.#min = range.min
    this.#bits = size <= MAX_BITSET_IDS ? new Uint8Array(Math.ceil(size / 8)) : null
    this.#set = this.#bits ? null : new Set()
  }

  add(id: number): void {
    if (this.#bits) {
      const i = id - this.#min
      const byte = i >>> 3
      const mask = 1 << (i & 7)
      const cur = this.#bits[byte] ?? 0
      if ((cur & mask) === 0) {
        this.#bits[byte] = cur | mask
        this.#count++
      }
    } else if (this.#set && !this.#set.has(id)) {
      this.#set.add(id)
      this.#count++
    }
  }

  get count(): number {
    return this.#count
  }
}
