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
    // issue() and refusalNow() never read the database: the cache's loader does.
    db: {} as Db,
    gate: new MemoryStockGate(),
    recorder: null,
    cache: new CouponCache(load),
    onOutcome: (o) => outcomes.push(o),
    now: () => NOW,
  })
  return { issues, outcomes }
}

describe('IssueService.refusalNow', () => {
  it('answers what the cache is certain of, counted once; null for what only issue() decides', async () => {
    const ended = { ...rules, issueEnd: 1_200 }
    const { issues, outcomes } = service(async () => ended)
    assert.equal(issues.refusalNow(1), null, 'not cached yet')
    assert.deepEqual(await issues.issue(1, 'u1'), { won: false, refusal: 'ISSUE_ENDED' })
    assert.equal(issues.refusalNow(1), 'ISSUE_ENDED')
    assert.deepEqual(
      outcomes.map((o) => (o.won ? 'WON' : o.refusal)),
      ['ISSUE_ENDED', 'ISSUE_ENDED'],
    )
  })

  it('a coupon whose load fails: null, issue() hears the failure, and nothing is left unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const { issues } = service(async () => {
        throw new Error('database down')
      })
      assert.equal(issues.refusalNow(1), null)
      await assert.rejects(issues.issue(1, 'u1'), /database down/)
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.deepEqual(unhandled, [])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })
})
