/**
 * The draw's part of the StockGate contract, on every gate: before the draw a
 * request inside the window is an entry (ENTERED, one per user, with the
 * user's pseudonym, counted by entrantCount), never a win; closed entries answer DRAWING; the winners
 * entered once (entering them again changes nothing), ranks 1..n; then a loser
 * is NOT_DRAWN, anyone else first-come for what is left.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { IssueOutcome } from '../../src/domain/coupon.js'
import { pseudonymOf } from '../../src/draw/shuffle.js'
import { type GateUnderTest, selectedGates } from '../helpers/gates.js'

const T0 = Date.UTC(2026, 10, 24, 4, 0, 0)
const HOUR = 3_600_000
const DRAW_AT = T0 + 600_000
const SEED = Buffer.alloc(32, 7)

const kind = (o: IssueOutcome) => (o.won ? 'WON' : o.refusal)
const draw = { couponId: 0, rank: 0, issuedAt: DRAW_AT, requestId: 'draw' }

for (const factory of selectedGates()) {
  describe(`StockGate draw contract: ${factory.name}`, { skip: await factory.skip() }, () => {
    let g: GateUnderTest
    before(async () => {
      g = await factory.create()
    })
    after(async () => g?.dispose())

    async function drawCoupon(totalQuantity: number) {
      const id = await g.addCoupon({
        issueStart: T0,
        issueEnd: T0 + HOUR,
        totalQuantity,
        drawAt: DRAW_AT,
      })
      g.seeds.set(id, SEED)
      return id
    }

    it('takes entries before drawAt, one per user, never a win', async () => {
      const id = await drawCoupon(1)
      const first = await g.gate.tryIssue(id, 'a', T0)
      assert.deepEqual(first, {
        won: false,
        refusal: 'ENTERED',
        drawAt: DRAW_AT,
        pseudonym: pseudonymOf(SEED, 'a'),
      })
      assert.equal(kind(await g.gate.tryIssue(id, 'a', T0 + 1)), 'ENTERED')
      assert.equal(kind(await g.gate.tryIssue(id, 'b', DRAW_AT - 1)), 'ENTERED')
      assert.equal(kind(await g.gate.tryIssue(id, 'c', T0 - 1)), 'ISSUE_NOT_STARTED')
      assert.equal(kind(await g.gate.tryIssue(id, 'c', DRAW_AT)), 'DRAWING')
      assert.equal(await g.gate.won(id), 0)
      assert.equal(await g.gate.entrantCount(id), 2, 'entrants: a and b, once each')
      assert.deepEqual(await g.gate.entry(id, 'a'), { drawAt: DRAW_AT, drawn: false })
      assert.equal(await g.gate.entry(id, 'c'), null)
    })

    it('answers DRAWING once the entries are closed, until the winners are in', async () => {
      const id = await drawCoupon(1)
      assert.equal(kind(await g.gate.tryIssue(id, 'a', T0)), 'ENTERED')
      await g.gate.closeEntries(id)
      assert.equal(kind(await g.gate.tryIssue(id, 'b', T0 + 1)), 'DRAWING')
      assert.equal(kind(await g.gate.tryIssue(id, 'a', T0 + 1)), 'DRAWING')
    })

    it('enters the winners once, in drawn order; losers NOT_DRAWN; the rest first-come', async () => {
      const id = await drawCoupon(3)
      for (const u of ['a', 'b', 'c', 'd']) await g.gate.tryIssue(id, u, T0)
      await g.gate.closeEntries(id)
      const winners = [
        { ...draw, couponId: id, userId: 'c', rank: 1 },
        { ...draw, couponId: id, userId: 'a', rank: 2 },
      ]
      await g.gate.enterWinners(id, winners)
      await g.gate.enterWinners(id, winners) // a draw run again: nothing twice
      assert.equal(await g.gate.won(id), 2)
      assert.deepEqual(await g.gate.lookup(id, 'c'), winners[0])
      assert.equal(kind(await g.gate.tryIssue(id, 'a', DRAW_AT + 1)), 'ALREADY_ISSUED')
      // What is left: first-come, ranks continuing.
      const late = await g.gate.tryIssue(id, 'x', DRAW_AT + 1)
      assert.equal(late.won && late.win.rank, 3)
      assert.equal(kind(await g.gate.tryIssue(id, 'b', DRAW_AT + 2)), 'NOT_DRAWN')
      assert.equal(kind(await g.gate.tryIssue(id, 'y', DRAW_AT + 2)), 'SOLD_OUT')
      assert.deepEqual(await g.gate.entry(id, 'b'), { drawAt: DRAW_AT, drawn: true })
    })

    it('a coupon without a draw is first-come from issueStart', async () => {
      const id = await g.addCoupon({ issueStart: T0, issueEnd: T0 + HOUR, totalQuantity: 1 })
      assert.equal(kind(await g.gate.tryIssue(id, 'a', T0)), 'WON')
      assert.equal(kind(await g.gate.tryIssue(id, 'b', T0)), 'SOLD_OUT')
      assert.equal(await g.gate.entry(id, 'b'), null)
      assert.equal(await g.gate.entrantCount(id), 0)
    })
  })
}
