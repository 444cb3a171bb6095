/**
 * The test vector published in docs/draw.md, read from the page itself, against
 * the code: the commitment, the pseudonyms, the digest, the key, the stream's
 * first words, the rejection example, the winners and the whole order. A
 * change to either side fails here.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { IndexStream } from '../../src/draw/index-stream.js'
import {
  commitmentOf,
  drawWinners,
  entrantsOf,
  pseudonymOf,
  seedFromHex,
  shuffledEntrants,
  shuffleKey,
} from '../../src/draw/shuffle.js'
import { verifyDraw } from '../../src/draw/verify.js'
import { publishedDraw } from '../helpers/draws.js'

interface Vector {
  seed: string
  commitment: string
  userIds: string[]
  quantity: number
  entrantsDigest: string
  key: string
  firstWords: string[]
  winners: string[]
  order: string[]
}

const page = readFileSync(new URL('../../docs/draw.md', import.meta.url), 'utf8')
const block = /```json test-vector\n([\s\S]*?)```/.exec(page)?.[1]
const vector = JSON.parse(block ?? 'null') as Vector

describe('the published test vector (docs/draw.md)', () => {
  const seed = seedFromHex(vector.seed)
  const entrants = entrantsOf(seed, vector.userIds)

  it('gives the commitment, the digest and the key', () => {
    assert.equal(commitmentOf(seed), vector.commitment)
    const { entrantsDigest } = drawWinners(seed, entrants, vector.quantity)
    assert.equal(entrantsDigest, vector.entrantsDigest)
    assert.equal(shuffleKey(seed, entrantsDigest).toString('hex'), vector.key)
  })

  it('gives the stream words, and drops the one the rejection example drops', () => {
    const stream = new IndexStream(Buffer.from(vector.key, 'hex'))
    const words = vector.firstWords.map(() => stream.word().toString(16).padStart(8, '0'))
    assert.deepEqual(words, vector.firstWords)
    const sampled = new IndexStream(Buffer.from(vector.key, 'hex'))
    const indices = Array.from({ length: 6 }, () => sampled.next(3 * 2 ** 30))
    assert.equal(sampled.words, 7)
    assert.equal(indices[5], Number.parseInt(vector.firstWords[6] ?? '', 16))
  })

  it('draws the published winners, in the published order', () => {
    assert.deepEqual(drawWinners(seed, entrants, vector.quantity).winners, vector.winners)
    const byPseudonym = new Map(vector.userIds.map((u) => [pseudonymOf(seed, u), u]))
    const order = shuffledEntrants(seed, entrants).map((p) => byPseudonym.get(p))
    assert.deepEqual(order, vector.order)
    assert.deepEqual(
      vector.winners.map((p) => byPseudonym.get(p)),
      vector.order.slice(0, vector.quantity),
    )
  })

  it('lists every pseudonym of the page table', () => {
    for (const userId of vector.userIds) {
      assert.ok(page.includes(`| \`${pseudonymOf(seed, userId)}\` | \`${userId}\` |`), userId)
    }
  })

  it('is a draw verify-draw accepts', () => {
    const { record, entrantList } = publishedDraw(seed, vector.userIds, vector.quantity)
    const v = verifyDraw({ record, entrantList, userId: 'carol' })
    assert.equal(v.ok, true)
    assert.equal(v.user?.rank, 2)
  })
})
