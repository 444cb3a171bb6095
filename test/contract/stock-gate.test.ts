/**
 * The StockGate contract: every adapter decides window → duplicate → quantity
 * atomically, hands out ranks 1..N, and records the win in the same step.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { IssueOutcome } from '../../src/domain/coupon.js'
import { type GateUnderTest, selectedGates } from '../helpers/gates.js'

const T0 = Date.UTC(2026, 10, 24, 4, 0, 0)
const HOUR = 3_600_000
const open = { issueStart: T0, issueEnd: T0 + HOUR }

const refusal = (o: IssueOutcome) => (o.won ? 'WON' : o.refusal)
const rank = (o: IssueOutcome) => (o.won ? o.win.rank : null)

for (const factory of selectedGates()) {
  describe(`StockGate contract: ${factory.name}`, { skip: await factory.skip() }, () => {
    let g: GateUnderTest
    before(async () => {
      g = await factory.create()
    })
    after(async () => g?.dispose())

    it('refuses an unknown coupon', async () => {
      assert.equal(refusal(await g.gate.tryIssue(888_888_888, 'u', T0)), 'COUPON_NOT_FOUND')
    })

    it('opens at issueStart (inclusive) and closes at issueEnd (exclusive)', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: null })
      assert.equal(refusal(await g.gate.tryIssue(id, 'early', T0 - 1)), 'ISSUE_NOT_STARTED')
      assert.equal(refusal(await g.gate.tryIssue(id, 'first', T0)), 'WON')
      assert.equal(refusal(await g.gate.tryIssue(id, 'last', T0 + HOUR - 1)), 'WON')
      assert.equal(refusal(await g.gate.tryIssue(id, 'late', T0 + HOUR)), 'ISSUE_ENDED')
      assert.equal(await g.gate.won(id), 2)
    })

    it('checks the window before the duplicate and the quantity', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 1 })
      assert.equal(refusal(await g.gate.tryIssue(id, 'a', T0)), 'WON')
      assert.equal(refusal(await g.gate.tryIssue(id, 'a', T0 + HOUR)), 'ISSUE_ENDED')
      assert.equal(refusal(await g.gate.tryIssue(id, 'b', T0 - 5)), 'ISSUE_NOT_STARTED')
    })

    it('refuses a second win of the same user, before the quantity', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 1 })
      assert.equal(refusal(await g.gate.tryIssue(id, 'u', T0)), 'WON')
      assert.equal(refusal(await g.gate.tryIssue(id, 'u', T0 + 1)), 'ALREADY_ISSUED')
      assert.equal(refusal(await g.gate.tryIssue(id, 'v', T0 + 1)), 'SOLD_OUT')
    })

    it('hands out ranks 1..total, then SOLD_OUT', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 3 })
      const ranks = []
      for (const u of ['a', 'b', 'c']) ranks.push(rank(await g.gate.tryIssue(id, u, T0)))
      assert.deepEqual(ranks, [1, 2, 3])
      assert.equal(refusal(await g.gate.tryIssue(id, 'd', T0)), 'SOLD_OUT')
      assert.equal(await g.gate.won(id), 3)
    })

    it('with partner codes: at most one win per code, each with code number rank', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 5 })
      const plain = await g.gate.tryIssue(id, 'before', T0)
      assert.equal(plain.won && plain.code, undefined, 'no code: none in the outcome')
      assert.equal(await g.gate.appendCodes(id, 1, ['C1', 'C2', 'C3']), 3)
      const b = await g.gate.tryIssue(id, 'b', T0, 'req-b')
      assert.deepEqual(b.won && [b.win.rank, b.code], [2, 'C2'])
      assert.deepEqual(
        await g.gate
          .tryIssue(id, 'b', T0 + HOUR, 'req-b')
          .then((o) => o.won && [o.win.rank, o.code]),
        [2, 'C2'],
        'the same request again: its win and code again',
      )
      const c = await g.gate.tryIssue(id, 'c', T0)
      assert.deepEqual(c.won && [c.win.rank, c.code], [3, 'C3'])
      assert.equal(refusal(await g.gate.tryIssue(id, 'd', T0)), 'SOLD_OUT')
      assert.equal(await g.gate.appendCodes(id, 4, ['C4']), 4)
      const d = await g.gate.tryIssue(id, 'd', T0)
      assert.deepEqual(d.won && [d.win.rank, d.code], [4, 'C4'])
      assert.equal(refusal(await g.gate.tryIssue(id, 'e', T0)), 'SOLD_OUT')
    })

    it('an unlimited coupon with codes is limited by them', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: null })
      assert.equal(await g.gate.appendCodes(id, 1, ['U1']), 1)
      const a = await g.gate.tryIssue(id, 'a', T0)
      assert.deepEqual(a.won && [a.win.rank, a.code], [1, 'U1'])
      assert.equal(refusal(await g.gate.tryIssue(id, 'b', T0)), 'SOLD_OUT')
    })

    it('takes codes in number order: skips those it holds, takes nothing past a gap', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 10 })
      assert.equal(await g.gate.appendCodes(id, 3, ['X3', 'X4']), 0, 'a gap: nothing taken')
      assert.equal(await g.gate.appendCodes(id, 1, ['X1', 'X2']), 2)
      assert.equal(await g.gate.appendCodes(id, 2, ['X2', 'X3']), 3, 'X2 skipped')
      assert.equal(await g.gate.appendCodes(id, 1, []), 3, 'the count alone')
      for (const [i, u] of ['p', 'q', 'r'].entries()) {
        const o = await g.gate.tryIssue(id, u, T0)
        assert.deepEqual(o.won && [o.win.rank, o.code], [i + 1, `X${i + 1}`])
      }
      assert.equal(refusal(await g.gate.tryIssue(id, 's', T0)), 'SOLD_OUT')
      assert.equal(await g.gate.appendCodes(777_777_777, 1, ['Z']), 'NOT_LOADED')
    })

    it('never runs out when the quantity is unlimited', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: null })
      for (let i = 1; i <= 200; i++) assert.equal(rank(await g.gate.tryIssue(id, `u${i}`, T0)), i)
    })

    it('treats user ids as case-sensitive strings', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: null })
      assert.equal(refusal(await g.gate.tryIssue(id, 'abc', T0)), 'WON')
      assert.equal(refusal(await g.gate.tryIssue(id, 'ABC', T0)), 'WON')
    })

    it('looks a win up with its rank, instant and the request that won it', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 10 })
      const won = await g.gate.tryIssue(id, 'x', T0 + 7)
      const requestId = won.won ? won.win.requestId : undefined
      assert.equal(typeof requestId, 'string', 'a request without an id is given one')
      assert.deepEqual(await g.gate.lookup(id, 'x'), {
        couponId: id,
        userId: 'x',
        rank: 1,
        issuedAt: T0 + 7,
        requestId,
      })
      assert.equal(await g.gate.lookup(id, 'y'), null)
      // lookupLoaded answers alike for a coupon the gate holds.
      assert.deepEqual(await g.gate.lookupLoaded(id, 'x'), await g.gate.lookup(id, 'x'))
      assert.equal(await g.gate.lookupLoaded(id, 'y'), null)
    })

    it('drops what it holds under an id when that coupon is registered as new', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 2 })
      await g.gate.tryIssue(id, 'stale-1', T0)
      await g.gate.tryIssue(id, 'stale-2', T0)
      await g.gate.register({ couponId: id, ...open, totalQuantity: 1 })
      assert.equal(await g.gate.won(id), 0)
      assert.equal(await g.gate.lookup(id, 'stale-1'), null)
      assert.equal(rank(await g.gate.tryIssue(id, 'stale-2', T0)), 1)
      assert.equal(refusal(await g.gate.tryIssue(id, 'fresh', T0)), 'SOLD_OUT')
    })

    it('decides the same request twice as the same win; another request of the user is ALREADY_ISSUED', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 2 })
      const first = await g.gate.tryIssue(id, 'twice', T0, 'req-1')
      assert.equal(rank(first), 1)
      assert.deepEqual(await g.gate.tryIssue(id, 'twice', T0, 'req-1'), first)
      assert.equal(refusal(await g.gate.tryIssue(id, 'twice', T0, 'req-2')), 'ALREADY_ISSUED')
      assert.equal(refusal(await g.gate.tryIssue(id, 'twice', T0)), 'ALREADY_ISSUED')
      assert.equal(await g.gate.won(id), 1, 'recorded once')
      assert.equal(rank(await g.gate.tryIssue(id, 'other', T0, 'req-1')), 2)
      assert.equal(refusal(await g.gate.tryIssue(id, 'third', T0, 'req-3')), 'SOLD_OUT')
      // Sold out now, or the window closed: the same request again is still its win.
      assert.deepEqual(await g.gate.tryIssue(id, 'twice', T0, 'req-1'), first)
      assert.deepEqual(await g.gate.tryIssue(id, 'twice', T0 + HOUR, 'req-1'), first)
      assert.equal(refusal(await g.gate.tryIssue(id, 'twice', T0 + HOUR, 'req-2')), 'ISSUE_ENDED')
      assert.deepEqual(await g.gate.lookup(id, 'twice'), {
        couponId: id,
        userId: 'twice',
        rank: 1,
        issuedAt: T0,
        requestId: 'req-1',
      })
    })

    it('keeps coupons apart', async () => {
      const a = await g.addCoupon({ ...open, totalQuantity: 1 })
      const b = await g.addCoupon({ ...open, totalQuantity: 1 })
      assert.equal(rank(await g.gate.tryIssue(a, 'same', T0)), 1)
      assert.equal(rank(await g.gate.tryIssue(b, 'same', T0)), 1)
    })

    it('applies new rules at once, and refuses a quantity below what is won', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 2 })
      await g.gate.tryIssue(id, 'a', T0)
      await g.gate.tryIssue(id, 'b', T0)
      assert.equal(
        await g.gate.configure({ couponId: id, ...open, totalQuantity: 1 }),
        'QUANTITY_BELOW_ISSUED',
      )
      assert.equal(refusal(await g.gate.tryIssue(id, 'c', T0)), 'SOLD_OUT')
      assert.equal(await g.gate.configure({ couponId: id, ...open, totalQuantity: 3 }), 'OK')
      assert.equal(rank(await g.gate.tryIssue(id, 'c', T0)), 3)
      assert.equal(
        await g.gate.configure({
          couponId: id,
          issueStart: T0,
          issueEnd: T0 + 10,
          totalQuantity: 3,
        }),
        'OK',
      )
      assert.equal(refusal(await g.gate.tryIssue(id, 'd', T0 + 10)), 'ISSUE_ENDED')
      assert.equal(await g.gate.configure({ couponId: id, ...open, totalQuantity: null }), 'OK')
      assert.equal(rank(await g.gate.tryIssue(id, 'd', T0 + 10)), 4)
    })

    it('decides calls made together one by one, in call order, each at its own instant', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 3 })
      const other = await g.addCoupon({ ...open, totalQuantity: 1 })
      const outcomes = await Promise.all([
        g.gate.tryIssue(id, 'a', T0 - 1),
        g.gate.tryIssue(id, 'a', T0),
        g.gate.tryIssue(other, 'a', T0 + 5),
        g.gate.tryIssue(id, 'a', T0 + 2),
        g.gate.tryIssue(id, 'b', T0 + HOUR),
        g.gate.tryIssue(id, 'b', T0 + 1),
        g.gate.tryIssue(id, 'c', T0 + 3),
        g.gate.tryIssue(id, 'd', T0 + 4),
        g.gate.tryIssue(id, 'c', T0 + 5),
        g.gate.tryIssue(other, 'b', T0 + 5),
      ])
      assert.deepEqual(
        outcomes.map((o) => (o.won ? o.win.rank : o.refusal)),
        [
          'ISSUE_NOT_STARTED',
          1,
          1,
          'ALREADY_ISSUED',
          'ISSUE_ENDED',
          2,
          3,
          'SOLD_OUT',
          'ALREADY_ISSUED',
          'SOLD_OUT',
        ],
      )
      assert.equal((await g.gate.lookup(id, 'a'))?.issuedAt, T0)
      assert.equal((await g.gate.lookup(id, 'b'))?.issuedAt, T0 + 1)
      assert.equal((await g.gate.lookup(other, 'a'))?.issuedAt, T0 + 5)
      assert.equal(await g.gate.won(id), 3)
    })

    it('first come, first served: of 1,000 calls made at once for 600 coupons, the first 600 win, ranked in call order', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 600 })
      const outcomes = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => g.gate.tryIssue(id, `u${i}`, T0 + i)),
      )
      assert.deepEqual(
        outcomes.map((o) => (o.won ? o.win.rank : o.refusal)),
        Array.from({ length: 1000 }, (_, i) => (i < 600 ? i + 1 : 'SOLD_OUT')),
      )
      assert.equal((await g.gate.lookup(id, 'u599'))?.issuedAt, T0 + 599)
    })

    it('under 4,000 concurrent calls from 2,000 users (each twice) on 300 coupons: exactly 300 wins, ranks 1..300', async () => {
      const id = await g.addCoupon({ ...open, totalQuantity: 300 })
      const calls = []
      for (let round = 0; round < 2; round++) {
        for (let u = 0; u < 2000; u++) calls.push(g.gate.tryIssue(id, `user-${u}`, T0 + round))
      }
      const outcomes = await Promise.all(calls)
      const wins = outcomes.filter((o) => o.won)
      assert.equal(wins.length, 300)
      assert.deepEqual(
        wins.map(rank).sort((a, b) => (a ?? 0) - (b ?? 0)),
        Array.from({ length: 300 }, (_, i) => i + 1),
      )
      const winners = new Set(wins.map((o) => (o.won ? o.win.userId : '')))
      assert.equal(winners.size, 300)
      for (const o of outcomes) {
        if (!o.won) assert.ok(o.refusal === 'SOLD_OUT' || o.refusal === 'ALREADY_ISSUED', o.refusal)
      }
      assert.equal(await g.gate.won(id), 300)
    })
  })
}
