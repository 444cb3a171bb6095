/**
 * The draw's index sampler: its words are the HMAC blocks of the counter, it
 * rejects the words that would bias an index, and its indices and the shuffle's
 * orders are uniform. The statistical checks use fixed keys and seeds, so they
 * give the same counts on every run and cannot flake; the thresholds are the
 * chi-square values a fair sampler exceeds one time in a thousand.
 */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { describe, it } from 'node:test'
import { IndexStream } from '../../src/draw/index-stream.js'
import { entrantsOf, shuffledEntrants } from '../../src/draw/shuffle.js'

const KEY = Buffer.alloc(32, 7)

function chiSquare(counts: readonly number[], expected: number): number {
  return counts.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0)
}

describe('the index stream', () => {
  it('reads HMAC-SHA256(K, counter) blocks as big-endian 32-bit words', () => {
    const stream = new IndexStream(KEY)
    const words = Array.from({ length: 16 }, () => stream.word())
    const blocks = [0n, 1n].map((n) => {
      const counter = Buffer.alloc(8)
      counter.writeBigUInt64BE(n)
      return createHmac('sha256', KEY).update(counter).digest()
    })
    const expected = blocks.flatMap((b) =>
      Array.from({ length: 8 }, (_, i) => b.readUInt32BE(4 * i)),
    )
    assert.deepEqual(words, expected)
  })

  it('drops the words at or above the last whole multiple of the bound', () => {
    // 3 * 2^30: words from 3 * 2^30 up (a quarter) would fold onto 0..2^30-1.
    const bound = 3 * 2 ** 30
    const sampled = new IndexStream(KEY)
    const raw = new IndexStream(KEY)
    for (let i = 0; i < 200; i++) {
      const index = sampled.next(bound)
      let word = raw.word()
      while (word >= bound) word = raw.word()
      assert.equal(index, word)
    }
    assert.ok(sampled.words > 200, 'some words were rejected')
    assert.equal(sampled.words, raw.words)
  })

  it('never reads past a power of two, and refuses a bound out of range', () => {
    const stream = new IndexStream(KEY)
    for (let i = 0; i < 100; i++) assert.ok(stream.next(2 ** 32) < 2 ** 32)
    assert.equal(stream.words, 100)
    assert.equal(stream.next(1), 0)
    for (const bad of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) {
      assert.throws(() => stream.next(bad), RangeError)
    }
  })

  it('gives every index of a small bound equally often', () => {
    const stream = new IndexStream(KEY)
    const counts = new Array<number>(10).fill(0)
    const samples = 100_000
    for (let i = 0; i < samples; i++) {
      const index = stream.next(10)
      counts[index] = (counts[index] ?? 0) + 1
    }
    // 9 degrees of freedom: 27.88 at p = 0.001
    assert.ok(chiSquare(counts, samples / 10) < 27.88, `counts ${counts}`)
  })

  it('is unbiased where a plain modulo would favour the low third', () => {
    const stream = new IndexStream(KEY)
    const bound = 3 * 2 ** 30
    const thirds = [0, 0, 0]
    const samples = 30_000
    for (let i = 0; i < samples; i++) {
      const third = Math.floor(stream.next(bound) / 2 ** 30)
      thirds[third] = (thirds[third] ?? 0) + 1
    }
    // 2 degrees of freedom: 13.82 at p = 0.001; a plain modulo gives about 5,000
    assert.ok(chiSquare(thirds, samples / 3) < 13.82, `thirds ${thirds}`)
  })
})

describe('the shuffle over many seeds', () => {
  it('gives each of the 24 orders of four entrants equally often', () => {
    const counts = new Map<string, number>()
    const draws = 24_000
    for (let s = 0; s < draws; s++) {
      const seed = Buffer.alloc(32)
      seed.writeUInt32BE(s)
      const entrants = entrantsOf(seed, ['a', 'b', 'c', 'd'])
      const order = shuffledEntrants(seed, entrants)
        .map((p) => entrants.indexOf(p))
        .join('')
      counts.set(order, (counts.get(order) ?? 0) + 1)
    }
    assert.equal(counts.size, 24)
    // 23 degrees of freedom: 49.73 at p = 0.001
    assert.ok(chiSquare([...counts.values()], draws / 24) < 49.73, `${[...counts]}`)
  })
})
