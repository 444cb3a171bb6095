import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { CouponRules } from '../../src/domain/coupon.js'
import type { GateTime } from '../../src/gate/gate-clock.js'
import { CouponCache, EDGE_GUARD_MS } from '../../src/service/coupon-cache.js'

const rules: CouponRules = { couponId: 1, totalQuantity: 10, issueStart: 1000, issueEnd: 2000 }

function counting(found: CouponRules | null = rules) {
  let loads = 0
  const load = async () => {
    loads++
    return found
  }
  return { load, loads: () => loads }
}

describe('CouponCache', () => {
  it('answers only certain refusals, loading each coupon once', async () => {
    const src = counting()
    const cache = new CouponCache(src.load, { ttlMs: 10_000 })
    assert.equal(await cache.check(1, 500), 'ISSUE_NOT_STARTED')
    assert.equal(cache.check(1, 1500), null)
    assert.equal(cache.check(1, 2000), 'ISSUE_ENDED')
    assert.equal(src.loads(), 1)
  })

  it('remembers an unknown coupon as not found', async () => {
    const cache = new CouponCache(counting(null).load)
    assert.equal(await cache.check(5, 1500), 'COUPON_NOT_FOUND')
  })

  it('short-circuits SOLD_OUT once the gate said so, until invalidated', async () => {
    const src = counting()
    const cache = new CouponCache(src.load, { ttlMs: 10_000 })
    await cache.check(1, 1500)
    cache.markSoldOut(1)
    assert.equal(cache.check(1, 1500), 'SOLD_OUT')
    cache.invalidate(1)
    assert.equal(await cache.check(1, 1500), null)
    assert.equal(src.loads(), 2)
  })

  it('keeps SOLD_OUT through a refresh while the quantity is the same', async () => {
    let found: CouponRules = rules
    let loads = 0
    const cache = new CouponCache(
      async () => {
        loads++
        return found
      },
      { ttlMs: 100 },
    )
    await cache.check(1, 1500)
    cache.markSoldOut(1)
    // Expired: answered from the copy while the refresh runs, then by the refresh.
    assert.equal(cache.check(1, 1600), 'SOLD_OUT')
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(loads, 2)
    assert.equal(cache.check(1, 1650), 'SOLD_OUT', 'same quantity: still sold out')
    // A raise whose notice was lost: the next refresh finds it and asks the gate again.
    found = { ...rules, totalQuantity: 20 }
    assert.equal(cache.check(1, 1750), 'SOLD_OUT')
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(loads, 3)
    assert.equal(cache.check(1, 1760), null)
  })

  it('reloads after the TTL', async () => {
    const src = counting()
    const cache = new CouponCache(src.load, { ttlMs: 100 })
    await cache.check(1, 1500)
    await cache.check(1, 1550)
    assert.equal(src.loads(), 1)
    await cache.check(1, 1700)
    assert.equal(src.loads(), 2)
  })

  it('shares one load between concurrent misses, and drops a load invalidated in flight', async () => {
    let release: (r: CouponRules) => void = () => {}
    let loads = 0
    const cache = new CouponCache(
      () =>
        new Promise<CouponRules>((resolve) => {
          loads++
          release = resolve
        }),
    )
    const a = cache.check(1, 1500)
    const b = cache.check(1, 1500)
    assert.equal(loads, 1)
    cache.invalidate(1)
    release({ ...rules, issueEnd: 1200 })
    assert.equal(await a, 'ISSUE_ENDED')
    assert.equal(await b, 'ISSUE_ENDED')
    const c = cache.check(1, 1500)
    assert.ok(c instanceof Promise, 'the stale load was not cached')
    release(rules)
    assert.equal(await c, null)
  })

  it("with the gate's clock, refuses the window only when every gate clock is surely outside it", async () => {
    let time: GateTime | null = null
    const cache = new CouponCache(counting().load, { ttlMs: 10_000, gateTime: () => time })
    // No gate clock known yet: the gate decides, whatever `now` says.
    assert.equal(await cache.check(1, 500), null)
    time = { now: 500, earliest: 490, latest: 510 }
    assert.equal(cache.check(1, 1500), 'ISSUE_NOT_STARTED', "the gate's clock judges, not now")
    time = { now: 995, earliest: 985, latest: 1005 }
    assert.equal(cache.check(1, 0), null, 'near the start: the gate decides')
    time = { now: 1000 - EDGE_GUARD_MS - 6, earliest: 0, latest: 1000 - EDGE_GUARD_MS - 1 }
    assert.equal(cache.check(1, 1500), 'ISSUE_NOT_STARTED')
    time = { now: 2005, earliest: 1995, latest: 2015 }
    assert.equal(cache.check(1, 5000), null, 'near the end: the gate decides')
    time = { now: 2100, earliest: 2000 + EDGE_GUARD_MS, latest: 2200 }
    assert.equal(cache.check(1, 1500), 'ISSUE_ENDED')
  })
})
