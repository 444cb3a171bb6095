/**
 * The wins an API process answered lately (src/coupon-state/recent-wins.ts): kept
 * per coupon for RECENT_MS, each taken once for the audit after Redis may have
 * lost data.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RECENT_MS, RecentWins } from '../../src/coupon-state/recent-wins.js'

describe('recent wins', () => {
  it('keeps each coupon’s wins until they are taken, once', () => {
    const r = new RecentWins()
    r.add(1, 'a', 1, 'req-a', 1000)
    r.add(2, 'b', 1, undefined, 1001)
    r.add(1, 'c', 2, 'req-c', 1002)
    assert.deepEqual(r.coupons().sort(), [1, 2])
    assert.deepEqual(r.take(1), [
      { couponId: 1, userId: 'a', rank: 1, requestId: 'req-a' },
      { couponId: 1, userId: 'c', rank: 2, requestId: 'req-c' },
    ])
    assert.deepEqual(r.take(1), [])
    assert.deepEqual(r.coupons(), [2])
  })

  it('drops wins older than RECENT_MS, and keeps the newer ones', () => {
    const r = new RecentWins()
    r.add(1, 'old', 1, undefined, 0)
    r.add(2, 'old2', 1, undefined, 1)
    r.add(1, 'mid', 2, undefined, RECENT_MS)
    r.add(1, 'new', 3, undefined, 2 * RECENT_MS + 10) // 'mid' is now older than RECENT_MS
    assert.deepEqual(
      r.take(1).map((w) => w.userId),
      ['new'],
    )
    assert.deepEqual(r.coupons(), [], 'a coupon whose wins all aged out is forgotten')
  })

  it('keeps every win of the last RECENT_MS, across many slices', () => {
    const r = new RecentWins()
    for (let t = 0; t < 3 * RECENT_MS; t += 10) r.add(7, `u${t}`, t / 10 + 1, undefined, t)
    const kept = r.take(7)
    const last = 3 * RECENT_MS - 10
    assert.ok(
      kept.every((w) => Number(w.userId.slice(1)) >= last - RECENT_MS - 250),
      'nothing much older than RECENT_MS',
    )
    assert.ok(
      kept.filter((w) => Number(w.userId.slice(1)) >= last - RECENT_MS).length ===
        RECENT_MS / 10 + 1,
      'every win of the last RECENT_MS',
    )
  })

  it('stays within its bound, dropping the oldest first', () => {
    const r = new RecentWins()
    for (let i = 0; i < 250_000; i++) r.add(i % 2, `u${i}`, i + 1, undefined, 1000)
    const kept = [...r.take(0), ...r.take(1)]
    assert.ok(kept.length <= 200_000, `${kept.length} kept`)
    assert.ok(
      kept.some((w) => w.userId === 'u249999'),
      'the newest is kept',
    )
  })

  it('gives back each win as it was added, across chunks', () => {
    const r = new RecentWins()
    const added = []
    for (let i = 0; i < 20_000; i++) {
      const win = {
        couponId: 4,
        userId: i % 3 === 0 ? `회원-${i}-ü` : `user-${i}`.padEnd(1 + (i % 120), 'x'),
        rank: i + 1,
        requestId: i % 5 === 0 ? undefined : `req-${i}`,
      }
      added.push(win)
      r.add(win.couponId, win.userId, win.rank, win.requestId, 1000 + i / 1000)
    }
    assert.deepEqual(r.take(4), added)
  })

  it('holds little memory off the heap for coupons with few wins', () => {
    const r = new RecentWins()
    const before = process.memoryUsage().arrayBuffers
    // 2000 coupons with a win each, then one more each in a later slice
    for (let c = 0; c < 2000; c++) r.add(c, `user-${c}`, 1, undefined, 1000)
    for (let c = 0; c < 2000; c++) r.add(c, `late-${c}`, 2, 'req', 1300)
    const held = process.memoryUsage().arrayBuffers - before
    assert.ok(held < 4 * 1024 * 1024, `${held} bytes held for 4000 wins`)
    assert.equal(r.take(1999).length, 2)
  })

  it('takes back wins whose audit failed', () => {
    const r = new RecentWins()
    r.add(3, 'a', 1, 'req', 1000)
    const taken = r.take(3)
    r.putBack(taken, 1500)
    assert.deepEqual(r.take(3), taken)
  })
})
