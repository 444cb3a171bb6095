/**
 * The draw's source of randomness: a keyed deterministic stream, and uniform
 * indices drawn from it without bias. Pure: the same key gives the same indices,
 * on any machine. docs/draw.md, steps 5 and 6.
 *
 * The stream is the concatenation of blocks HMAC-SHA256(K, counter), counter an
 * unsigned 64-bit big-endian integer from 0, read as 32-bit big-endian words.
 * An index below `bound` is a word `w` below the largest multiple of `bound` that
 * fits in 2^32, as `w mod bound`; a word at or above it is dropped and the next
 * one read (rejection sampling), so every index is exactly equally likely.
 */
import { createHmac } from 'node:crypto'

const WORD_SPACE = 2 ** 32
const BLOCK_BYTES = 32

export class IndexStream {
  readonly #key: Buffer
  #counter = 0n
  #block: Buffer = Buffer.alloc(0)
  #offset = BLOCK_BYTES
  /** words read so far, rejected ones included */
  words = 0

  constructor(key: Uint8Array) {
    this.#key = Buffer.from(key)
  }

  /** A uniform integer in [0, bound), 1 <= bound <= 2^32. */
  next(bound: number): number {
    if (!Number.isInteger(bound) || bound < 1 || bound > WORD_SPACE) {
      throw new RangeError(`bound must be an integer in 1..2^32, got ${bound}`)
    }
    const limit = WORD_SPACE - (WORD_SPACE % bound)
    for (;;) {
      const word = this.word()
      if (word < limit) return word % bound
    }
  }

  /** The stream's next 32-bit word. */
  word(): number {
    if (this.#offset === BLOCK_BYTES) {
      const counter = Buffer.alloc(8)
      counter.writeBigUInt64BE(this.#counter++)
      this.#block = createHmac('sha256', this.#key).update(counter).digest()
      this.#offset = 0
    }
    const word = this.#block.readUInt32BE(this.#offset)
    this.#offset += 4
    this.words++
    return word
  }
}
