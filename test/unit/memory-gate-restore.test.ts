/**
 * The in-process gate rebuilt at start from the stored coupons: rules and wins,
 * partner codes read in chunks, and a draw's entrants, open or drawn.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { StoredCoupon } from '../../src/coupon-state/gate-source.js'
import type { CouponRules, Win } from '../../src/domain/coupon.js'
import { restoreMemoryGate } from '../../src/gate/memory-stock-gate.js'

const NOW = 1_000_000
const rules = (couponId: number, over: Partial<CouponRules> = {}): CouponRules => ({
  couponId,
  totalQuantity: null,
  issueStart: NOW - 1000,
  issueEnd: NOW + 1000,
  drawAt: null,
  ...over,
})

function stored(
  r: CouponRules,
  o: { wins?: Win[]; codes?: string[]; drawn?: boolean; entrants?: StoredCoupon['entrants'] } = {},
): StoredCoupon & { reads: number[] } {
  const codes = o.codes ?? []
  const reads: number[] = []
  return {
    rules: r,
    wins: o.wins ?? [],
    drawn: o.drawn ?? false,
    entrants: o.entrants ?? [],
    reads,
    async readCodes(fromSeq, max) {
      reads.push(fromSeq)
      return codes.slice(fromSeq - 1, fromSeq - 1 + max)
    },
  }
}

async function* each<T>(items: T[]): AsyncGenerator<T> {
  yield* items
}

describe('restoreMemoryGate', () => {
  it('restores wins and every partner code, read in chunks', async () => {
    const codes = Array.from({ length: 45_000 }, (_, i) => `code-${i + 1}`)
    const win: Win = { couponId: 1, userId: 'u1', rank: 1, issuedAt: NOW, requestId: 'r1' }
    const coupon = stored(rules(1), { wins: [win], codes })
    const gate = await restoreMemoryGate(each([coupon]), null)

    assert.deepEqual(await gate.lookup(1, 'u1'), win)
    // 45,000 codes: three chunks, then the empty read that ends it.
    assert.deepEqual(coupon.reads, [1, 20_001, 40_001, 45_001])
    const outcome = await gate.tryIssue(1, 'u2', NOW, 'r2')
    assert.deepEqual(outcome, {
      won: true,
      win: { couponId: 1, userId: 'u2', rank: 2, issuedAt: NOW, requestId: 'r2' },
      code: 'code-2',
    })
  })

  it("restores a draw's entrants, its state open or drawn", async () => {
    const drawAt = NOW + 500
    const entrants = [{ pseudonym: 'a'.repeat(64), userId: 'u1' }]
    const open = stored(rules(1, { drawAt }), { entrants })
    const drawn = stored(rules(2, { drawAt }), { entrants, drawn: true })
    const gate = await restoreMemoryGate(each([open, drawn]), null)

    assert.deepEqual(gate.entrants(1), entrants)
    assert.deepEqual(gate.entrants(2), entrants)
    assert.deepEqual(await gate.entry(1, 'u1'), { drawAt, drawn: false })
    assert.deepEqual(await gate.entry(2, 'u1'), { drawAt, drawn: true })
    assert.deepEqual(gate.dueDraws(drawAt), [1])
  })
})
