/**
 * The checks of `firstcome verify-draw` (src/draw/verify.ts): an honest draw
 * passes for any seed and entrant set and tells each user their fate; each kind
 * of tampering fails the check that names it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { USER_ID_PATTERN } from '../../src/domain/user-id.js'
import { pseudonymOf } from '../../src/draw/shuffle.js'
import { type CheckName, type VerifyInput, verifyDraw } from '../../src/draw/verify.js'
import { publishedDraw } from '../helpers/draws.js'

const SEED = Buffer.alloc(32, 0x5a)
const USERS = Array.from({ length: 30 }, (_, i) => `user-${i}`)

function failed(input: VerifyInput): CheckName[] {
  return verifyDraw(input)
    .checks.filter((c) => !c.ok)
    .map((c) => c.name)
}

describe('verifying a draw', () => {
  it('agrees with the shuffle for any seed, entrants and quantity, and finds each user', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uniqueArray(fc.stringMatching(new RegExp(USER_ID_PATTERN)), { maxLength: 30 }),
        fc.nat(40),
        (seed, users, quantity) => {
          const { record, entrantList } = publishedDraw(seed, users, quantity)
          const outsider = 'never-entered'
          fc.pre(!users.includes(outsider))
          for (const userId of [...users, outsider]) {
            const v = verifyDraw({ record, entrantList, userId })
            assert.equal(v.ok, true, JSON.stringify(v.checks))
            const at = record.winners.indexOf(pseudonymOf(seed, userId))
            assert.deepEqual(v.user, {
              userId,
              pseudonym: pseudonymOf(seed, userId),
              entered: userId !== outsider,
              rank: at < 0 ? null : at + 1,
            })
          }
        },
      ),
      { numRuns: 100 },
    )
  })

  it('checks the commitment against the seed and the one published before', () => {
    const { record, entrantList } = publishedDraw(SEED, USERS, 5)
    assert.deepEqual(failed({ record: { ...record, commitment: 'f'.repeat(64) }, entrantList }), [
      'commitment',
    ])
    assert.deepEqual(failed({ record, entrantList, publishedCommitment: record.commitment }), [])
    assert.deepEqual(failed({ record, entrantList, publishedCommitment: '0'.repeat(64) }), [
      'published commitment',
    ])
  })

  it('notices an entrant left out of the list', () => {
    const { record, entrants } = publishedDraw(SEED, USERS, 5)
    const loser = entrants.find((p) => !record.winners.includes(p)) as string
    const entrantList = entrants
      .filter((p) => p !== loser)
      .map((p) => `${p}\n`)
      .join('')
    // The digest changes the key, so even the winners no longer follow.
    assert.deepEqual(failed({ record, entrantList }), ['count', 'digest', 'winners'])
  })

  it('refuses an unsorted, repeated or malformed list without recomputing', () => {
    const { record, entrants } = publishedDraw(SEED, USERS, 5)
    const lists = {
      unsorted: [entrants[1], entrants[0], ...entrants.slice(2)],
      repeated: [entrants[0], ...entrants],
      malformed: [...entrants.slice(0, -1), 'not-a-pseudonym'],
    }
    for (const [how, lines] of Object.entries(lists)) {
      const v = verifyDraw({ record, entrantList: lines.map((p) => `${p}\n`).join('') })
      assert.equal(v.ok, false, how)
      assert.equal(v.checks.find((c) => c.name === 'entrant list')?.ok, false, how)
      assert.match(v.checks.find((c) => c.name === 'winners')?.detail ?? '', /not recomputed/)
    }
    const unterminated = publishedDraw(SEED, USERS, 5).entrantList.slice(0, -1)
    assert.ok(failed({ record, entrantList: unterminated }).includes('entrant list'))
  })

  it('notices winners swapped, left out, added, or a record that lies about its digest', () => {
    const { record, entrantList, entrants } = publishedDraw(SEED, USERS, 5)
    const [first, second, ...rest] = record.winners as [string, string, ...string[]]
    const swapped = verifyDraw({
      record: { ...record, winners: [second, first, ...rest] },
      entrantList,
    })
    assert.match(swapped.checks.find((c) => c.name === 'winners')?.detail ?? '', /rank 1 /)
    const outsider = entrants.find((p) => !record.winners.includes(p)) as string
    for (const winners of [record.winners.slice(0, 4), [...record.winners, outsider]]) {
      assert.deepEqual(failed({ record: { ...record, winners }, entrantList }), ['winners'])
    }
    assert.deepEqual(failed({ record: { ...record, quantity: 6 }, entrantList }), ['winners'])
    assert.deepEqual(
      failed({ record: { ...record, entrantsDigest: '0'.repeat(64) }, entrantList }),
      ['digest'],
    )
    assert.deepEqual(failed({ record: { ...record, entrants: 31 }, entrantList }), ['count'])
    assert.deepEqual(failed({ record: { ...record, algorithm: 'other-v2' }, entrantList }), [
      'algorithm',
    ])
  })

  it('passes a draw without entrants', () => {
    const { record, entrantList } = publishedDraw(SEED, [], 5)
    assert.equal(entrantList, '')
    assert.deepEqual(record.winners, [])
    assert.equal(verifyDraw({ record, entrantList, userId: 'u' }).ok, true)
  })
})
