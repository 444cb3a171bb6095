/**
 * The draw's shuffle, by property (fast-check): for any seed and entrant set it
 * is a permutation, deterministic, its winners are its prefix, it does not care
 * in which order the users came, and any change to the entrants or the seed
 * changes the digest and the key. The virtual-array Fisher–Yates is compared with
 * a plain one over a real array.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { USER_ID_PATTERN } from '../../src/domain/user-id.js'
import { IndexStream } from '../../src/draw/index-stream.js'
import {
  commitmentOf,
  drawWinners,
  EntrantsDigest,
  entrantsDigestOf,
  entrantsOf,
  pseudonymOf,
  shuffledEntrants,
  shuffleKey,
} from '../../src/draw/shuffle.js'

const seedArb = fc.uint8Array({ minLength: 32, maxLength: 32 })
const userIdArb = fc.stringMatching(new RegExp(USER_ID_PATTERN))
const usersArb = fc.uniqueArray(userIdArb, { maxLength: 40 })
const RUNS = { numRuns: 200 }

/** Fisher–Yates as textbooks write it, over a real array: the reference. */
function plainShuffle(seed: Uint8Array, entrants: readonly string[]): string[] {
  const order = [...entrants]
  const stream = new IndexStream(shuffleKey(seed, entrantsDigestOf(entrants)))
  for (let i = 0; i < order.length - 1; i++) {
    const j = i + stream.next(order.length - i)
    ;[order[i], order[j]] = [order[j] as string, order[i] as string]
  }
  return order
}

describe('the draw shuffle', () => {
  it('is a permutation of the entrants, the same each time', () => {
    fc.assert(
      fc.property(seedArb, usersArb, (seed, users) => {
        const entrants = entrantsOf(seed, users)
        const order = shuffledEntrants(seed, entrants)
        assert.deepEqual([...order].sort(), entrants)
        assert.deepEqual(shuffledEntrants(seed, entrants), order)
      }),
      RUNS,
    )
  })

  it('is the plain Fisher–Yates over the same stream', () => {
    fc.assert(
      fc.property(seedArb, usersArb, (seed, users) => {
        const entrants = entrantsOf(seed, users)
        assert.deepEqual(shuffledEntrants(seed, entrants), plainShuffle(seed, entrants))
      }),
      RUNS,
    )
  })

  it('draws winners that are the first min(n, entrants) of the order', () => {
    fc.assert(
      fc.property(seedArb, usersArb, fc.nat(50), (seed, users, quantity) => {
        const entrants = entrantsOf(seed, users)
        const { winners, entrantsDigest } = drawWinners(seed, entrants, quantity)
        assert.equal(entrantsDigest, entrantsDigestOf(entrants))
        assert.equal(winners.length, Math.min(quantity, entrants.length))
        assert.deepEqual(winners, shuffledEntrants(seed, entrants).slice(0, quantity))
      }),
      RUNS,
    )
  })

  it('does not depend on the order in which users entered', () => {
    fc.assert(
      fc.property(seedArb, usersArb, fc.nat(50), fc.nat(), (seed, users, quantity, salt) => {
        const reordered = [...users].sort(
          (a, b) => hashOf(a, salt) - hashOf(b, salt) || (a < b ? -1 : 1),
        )
        const entrants = entrantsOf(seed, users)
        assert.deepEqual(entrantsOf(seed, reordered), entrants)
        assert.deepEqual(entrantsOf(seed, [...users, ...users]), entrants, 'a set: repeats vanish')
        assert.deepEqual(
          drawWinners(seed, entrantsOf(seed, reordered), quantity),
          drawWinners(seed, entrants, quantity),
        )
      }),
      RUNS,
    )
  })

  it('changes digest and key when an entrant is added or left out', () => {
    fc.assert(
      fc.property(seedArb, usersArb, userIdArb, (seed, users, extra) => {
        fc.pre(!users.includes(extra))
        const entrants = entrantsOf(seed, users)
        const more = entrantsOf(seed, [...users, extra])
        const digest = entrantsDigestOf(entrants)
        assert.notEqual(entrantsDigestOf(more), digest)
        assert.notEqual(
          shuffleKey(seed, entrantsDigestOf(more)).toString('hex'),
          shuffleKey(seed, digest).toString('hex'),
        )
        if (entrants.length > 0) {
          assert.notEqual(entrantsDigestOf(entrants.slice(1)), digest)
        }
      }),
      RUNS,
    )
  })

  it('changes commitment, pseudonyms and key with any bit of the seed', () => {
    fc.assert(
      fc.property(seedArb, fc.nat(255), userIdArb, (seed, bit, user) => {
        const other = Uint8Array.from(seed)
        other[bit >> 3] = (other[bit >> 3] as number) ^ (1 << (bit & 7))
        assert.notEqual(commitmentOf(other), commitmentOf(seed))
        assert.notEqual(pseudonymOf(other, user), pseudonymOf(seed, user))
        const digest = entrantsDigestOf([])
        assert.notEqual(
          shuffleKey(other, digest).toString('hex'),
          shuffleKey(seed, digest).toString('hex'),
        )
      }),
      RUNS,
    )
  })
})

describe('the entrants digest', () => {
  it('is SHA-256 of the list as served, and refuses an unsorted or repeated list', () => {
    const a = 'a'.repeat(64)
    const b = 'b'.repeat(64)
    assert.equal(
      entrantsDigestOf([]),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    )
    const digest = new EntrantsDigest()
    digest.add(a)
    assert.throws(() => digest.add(a), /not above/)
    assert.throws(() => entrantsDigestOf([b, a]), /not above/)
    assert.throws(() => entrantsDigestOf(['A'.repeat(64)]), /not a pseudonym/)
    assert.throws(() => entrantsDigestOf([`${a}0`]), /not a pseudonym/)
  })
})

function hashOf(text: string, salt: number): number {
  let h = salt | 0
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x9e3779b1)
  return h
}
