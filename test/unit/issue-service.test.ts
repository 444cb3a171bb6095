import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Db } from '../../src/db/database.js'
import type { CouponRules, IssueOutcome } from '../../src/domain/coupon.js'
import { MemoryStockGate } from '../../src/gate/memory-stock-gate.js'
import { CouponCache } from '../../src/service/coupon-cache.js'
import { IssueService } from '../../src/service/issue-service.js'

const NOW = 1_500
const rules: CouponRules = { couponId: 1, totalQuantity: 10, issueStart: 1_000, issueEnd: 2_000 }

function service(load: () => Promise<CouponRules | null>) {
  const outcomes: IssueOutcome[] = []
  const issues = new IssueService({
    // issue() never reads the database: the cache's loader does.
    db: {} as Db,
    gate: new MemoryStockGate(),
    recorder: null,
    cache: new CouponCache(load),
    onOutcome: (_id, o) => outcomes.push(o),
    now: () => NOW,
  })
  return { issues, outcomes }
}

describe('IssueService.issue with the local cache', () => {
  it('answers at once, not as a promise, what the cache is certain of, each counted once', async () => {
    const ended = { ...rules, issueEnd: 1_200 }
    const { issues, outcomes } = service(async () => ended)
    const first = issues.issue(1, 'u1')
    assert.ok(first instanceof Promise, 'not cached yet: the load is awaited')
    assert.deepEqual(await first, { won: false, refusal: 'ISSUE_ENDED' })
    assert.deepEqual(issues.issue(1, 'u2'), { won: false, refusal: 'ISSUE_ENDED' })
    assert.deepEqual(
      outcomes.map((o) => (o.won ? 'WON' : o.refusal)),
      ['ISSUE_ENDED', 'ISSUE_ENDED'],
    )
  })

  it('what the cache cannot refuse goes to the gate, as a promise', async () => {
    const { issues, outcomes } = service(async () => rules)
    await issues.issue(1, 'u0') // loads the coupon into the cache
    const decided = issues.issue(1, 'u1')
    assert.ok(decided instanceof Promise)
    // The memory gate was never told of the coupon: it answers COUPON_NOT_FOUND.
    assert.deepEqual(await decided, { won: false, refusal: 'COUPON_NOT_FOUND' })
    assert.equal(outcomes.length, 2)
  })

  it('a coupon whose load fails: issue() rejects with the failure, and nothing is left unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const { issues } = service(async () => {
        throw new Error('database down')
      })
      await assert.rejects(async () => issues.issue(1, 'u1'), /database down/)
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})
