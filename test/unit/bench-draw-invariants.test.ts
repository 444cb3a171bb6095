/**
 * The draw scenario's invariants on plain facts: a draw made with the
 * documented functions passes every line; each way a draw or its rows can be
 * wrong fails the line that names it.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkDrawInvariants, type DrawFacts } from '../../packages/bench/src/draw.js'
import { pseudonymOf } from '../../src/draw/shuffle.js'
import { publishedDraw } from '../helpers/draws.js'

const SEED = Buffer.alloc(32, 9)
const USERS = Array.from({ length: 40 }, (_, i) => String(1000 + i))
const QUANTITY = 10

function facts(over: Partial<DrawFacts> = {}): DrawFacts {
  const p = publishedDraw(SEED, USERS, QUANTITY)
  const userOf = new Map(USERS.map((u) => [pseudonymOf(SEED, u), u]))
  const rows = new Map(p.record.winners.map((w, i) => [userOf.get(w) as string, i + 1]))
  return {
    quantity: QUANTITY,
    draw: {
      record: p.record,
      entrantList: p.entrantList,
      pseudonyms: p.entrants,
      userIds: p.entrants.map((e) => userOf.get(e) as string),
      recordedAfterMs: 420,
    },
    waitedMs: 500,
    distinct202: USERS.length,
    uncertain: 0,
    reported202: [...USERS, ...USERS].map(Number),
    won: QUANTITY,
    persisted: QUANTITY,
    drained: true,
    rows,
    ...over,
  }
}

const failed = (f: DrawFacts) =>
  checkDrawInvariants(f)
    .filter((l) => l.ok === false)
    .map((l) => l.name)

describe("the draw scenario's invariants", () => {
  it('a draw made as documented passes every line', () => {
    const lines = checkDrawInvariants(facts())
    assert.equal(lines.length, 8)
    assert.ok(
      lines.every((l) => l.ok === true),
      JSON.stringify(lines, null, 2),
    )
    assert.match(lines[0]?.detail ?? '', /recorded 0\.42 s after drawAt/)
  })

  it('no record: the draw did not run', () => {
    assert.deepEqual(failed(facts({ draw: null })), ['the draw ran'])
  })

  it('an entrant too many or too few for the 202 answers', () => {
    assert.deepEqual(failed(facts({ distinct202: 41 })), ['entrants = distinct users answered 202'])
    assert.deepEqual(failed(facts({ distinct202: 38 })), ['entrants = distinct users answered 202'])
    // Requests without a definite answer may have entered their users.
    assert.deepEqual(failed(facts({ distinct202: 38, uncertain: 2 })), [])
  })

  it('a user answered 202 missing from the list', () => {
    assert.deepEqual(failed(facts({ reported202: [1000, 5555] })), [
      'every user answered 202 is an entrant',
    ])
  })

  it('winners that are not the shuffle, or not entrants', () => {
    const f = facts()
    const draw = f.draw as NonNullable<DrawFacts['draw']>
    const swapped = [...draw.record.winners]
    ;[swapped[0], swapped[1]] = [swapped[1] as string, swapped[0] as string]
    const reordered = { ...draw, record: { ...draw.record, winners: swapped } }
    assert.ok(failed({ ...f, draw: reordered }).includes('the draw verifies (verify-draw)'))
    const stranger = pseudonymOf(SEED, 'nobody')
    const outsider = {
      ...draw,
      record: { ...draw.record, winners: [...draw.record.winners.slice(1), stranger] },
    }
    assert.ok(failed({ ...f, draw: outsider }).includes('winners ⊆ entrants'))
    const short = { ...draw, record: { ...draw.record, winners: draw.record.winners.slice(1) } }
    assert.ok(failed({ ...f, draw: short }).includes('winners = min(quantity, entrants)'))
  })

  it('rows missing, or a rank given to another winner', () => {
    assert.deepEqual(failed(facts({ persisted: 9, drained: false })), [
      'queue drained, gate = database',
    ])
    const f = facts()
    const rows = new Map(f.rows)
    const [a, b] = [...rows.keys()] as [string, string]
    rows.set(a, 2)
    rows.set(b, 1)
    assert.deepEqual(failed({ ...f, rows }), ['ranks 1..n persisted, each the record’s winner'])
    const lines = checkDrawInvariants({ ...f, rows: null })
    assert.equal(lines.at(-1)?.ok, null, 'not checked without the database')
  })
})
