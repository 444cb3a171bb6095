import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import pino from 'pino'
import type { Coupon } from '../../src/domain/coupon.js'
import { CouponWatch } from '../../src/ops/coupon-watch.js'

function coupon(startIn: number, endIn: number, total: number | null): Coupon {
  const now = Date.now()
  return {
    id: 7,
    title: 't',
    type: 'FIRST_COME_FIRST_SERVED',
    totalQuantity: total,
    issuedQuantity: 0,
    discountAmount: 1,
    minAvailableAmount: 1,
    issueStart: new Date(now + startIn),
    issueEnd: new Date(now + endIn),
    createdAt: new Date(now),
    updatedAt: new Date(now),
    drawAt: null,
    drawCommitment: null,
  }
}

/**
 * Moves the mocked clock on by `ms`, a poll interval's fraction at a time, letting
 * the promises each timer starts (claims, counts) settle in between.
 */
async function advance(t: TestContext, ms: number) {
  for (let passed = 0; passed < ms; passed += 50) {
    t.mock.timers.tick(50)
    await turn()
  }
}

describe('CouponWatch', () => {
  it('logs opened, sold out and closed once each, by the process that claims them', async (t) => {
    // The watch's timers and Date.now() on a mocked clock: the window's moments
    // come exactly when the test moves the clock past them.
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: Date.now() })
    const lines: Record<string, unknown>[] = []
    const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) })
    const c = coupon(300, 1500, 5)
    let won = 0
    const claimed = new Set<string>()
    const sources = {
      coupons: async () => [c],
      coupon: async () => c,
      won: async () => won,
      subscribe: () => {},
      claim: async (key: string) => !claimed.has(key) && !!claimed.add(key),
      logger,
    }
    // Two processes watching the same coupon, sharing the claims.
    const a = new CouponWatch(sources)
    const b = new CouponWatch(sources)
    await a.start()
    await b.start()
    b.changed(7)
    await advance(t, 700)
    won = 5
    await advance(t, 1500)
    a.stop()
    b.stop()
    const events = lines.map((l) => l.event)
    assert.deepEqual(events, ['coupon.window_opened', 'coupon.sold_out', 'coupon.window_closed'])
    const soldOut = lines[1] as { sellOutMs: number; won: number }
    assert.equal(soldOut.won, 5)
    assert.ok(soldOut.sellOutMs >= 300 && soldOut.sellOutMs < 1000, String(soldOut.sellOutMs))
  })
})
