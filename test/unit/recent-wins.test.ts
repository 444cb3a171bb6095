/**
 * The wins an API process answered lately (src/coupon-state/recent-wins.ts): kept
 * per coupon for RECENT_MS, each taken once for the audit after Redis may have
 * lost data.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RECENT_MS, type RecentWin, RecentWins } from '../../src/coupon-state/recent-wins.js'

const win = (couponId: number, userId: string, at: number): RecentWin => ({
  couponId,
  userId,
  rank: 1,
  at,
})

describe('recent wins', () => {
  it('keeps each coupon’s wins until they are taken, once', () => {
    const r = new RecentWins()
    r.add(win(1, 'a', 1000))
    r.add(win(2, 'b', 1001))
    r.add(win(1, 'c', 1002))
    assert.deepEqual(r.coupons().sort(), [1, 2])
    assert.deepEqual(
      r.take(1).map((w) => w.userId),
      ['a', 'c'],
    )
    assert.deepEqual(r.take(1), [])
    assert.deepEqual(r.coupons(), [2])
  })

  it('drops wins older than RECENT_MS, and keeps the newer ones', () => {
    const r = new RecentWins()
    r.add(win(1, 'old', 0))
    r.add(win(2, 'old2', 1))
    r.add(win(1, 'mid', RECENT_MS))
    r.add(win(1, 'new', 2 * RECENT_MS + 10)) // the oldest is now twice too old: trimmed
    assert.deepEqual(
      r.take(1).map((w) => w.userId),
      ['new'],
    )
    assert.deepEqual(r.coupons(), [], 'a coupon whose wins all aged out is forgotten')
  })
})
