import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type CouponRules,
  decideIssue,
  draftProblem,
  limitedRules,
  quantityBelowWon,
  rankHoles,
  remainingQuantity,
  strictestRules,
  windowRefusal,
} from '../../src/domain/coupon.js'
import { normaliseUserId } from '../../src/domain/user-id.js'

const rules: CouponRules = { couponId: 1, totalQuantity: 2, issueStart: 1000, issueEnd: 2000 }

describe('the issue window', () => {
  it('is issueStart <= now < issueEnd', () => {
    assert.equal(windowRefusal(rules, 999), 'ISSUE_NOT_STARTED')
    assert.equal(windowRefusal(rules, 1000), null)
    assert.equal(windowRefusal(rules, 1999), null)
    assert.equal(windowRefusal(rules, 2000), 'ISSUE_ENDED')
  })
})

describe('decideIssue', () => {
  it('checks window, then duplicate, then quantity', () => {
    assert.equal(decideIssue(rules, true, 2, 500), 'ISSUE_NOT_STARTED')
    assert.equal(decideIssue(rules, true, 2, 2500), 'ISSUE_ENDED')
    assert.equal(decideIssue(rules, true, 2, 1500), 'ALREADY_ISSUED')
    assert.equal(decideIssue(rules, false, 2, 1500), 'SOLD_OUT')
    assert.equal(decideIssue(rules, false, 1, 1500), null)
  })

  it('never sells out an unlimited coupon', () => {
    assert.equal(decideIssue({ ...rules, totalQuantity: null }, false, 1e9, 1500), null)
  })
})

describe('quantities', () => {
  it('reports what is left, never below zero, null when unlimited', () => {
    assert.equal(remainingQuantity({ totalQuantity: 5 }, 3), 2)
    assert.equal(remainingQuantity({ totalQuantity: 5 }, 9), 0)
    assert.equal(remainingQuantity({ totalQuantity: null }, 9), null)
  })

  it('refuses a quantity below the number won, allows equal or unlimited', () => {
    assert.equal(quantityBelowWon(2, 3), true)
    assert.equal(quantityBelowWon(3, 3), false)
    assert.equal(quantityBelowWon(null, 3), false)
  })

  it('limits the rules to the partner codes while they are fewer', () => {
    assert.equal(limitedRules(rules, 0), rules)
    assert.deepEqual(limitedRules(rules, 1), { ...rules, totalQuantity: 1 })
    assert.deepEqual(limitedRules(rules, 5), rules)
    assert.deepEqual(limitedRules({ ...rules, totalQuantity: null }, 7), {
      ...rules,
      totalQuantity: 7,
    })
  })
})

describe('draftProblem (rules a JSON schema cannot express)', () => {
  const draft = {
    title: 't',
    totalQuantity: 1,
    discountAmount: 0,
    minAvailableAmount: 0,
    issueStart: new Date(1000),
    issueEnd: new Date(2000),
  }
  it('accepts an end after the start', () => assert.equal(draftProblem(draft), null))
  it('refuses an end equal to or before the start', () => {
    assert.match(draftProblem({ ...draft, issueEnd: new Date(1000) }) ?? '', /after/)
    assert.match(draftProblem({ ...draft, issueEnd: new Date(10) }) ?? '', /after/)
  })
  it('refuses an invalid instant', () => {
    assert.match(draftProblem({ ...draft, issueStart: new Date(Number.NaN) }) ?? '', /issueStart/)
  })
})

describe('userId', () => {
  it('normalises positive integers to decimal strings', () => {
    assert.equal(normaliseUserId(7), '7')
    assert.equal(normaliseUserId(10_000_000), '10000000')
  })
  it('accepts the allowed characters, up to 64', () => {
    assert.equal(normaliseUserId('user-1_a.b:c@d'), 'user-1_a.b:c@d')
    assert.equal(normaliseUserId('x'.repeat(64)), 'x'.repeat(64))
  })
  it('refuses everything else', () => {
    for (const bad of [
      0,
      -1,
      1.5,
      Number.MAX_SAFE_INTEGER + 1,
      '',
      'x'.repeat(65),
      'a b',
      'ü',
      '<x>',
      null,
      true,
      {},
      [1],
    ]) {
      assert.equal(normaliseUserId(bad), null, JSON.stringify(bad))
    }
  })
})

describe('rankHoles', () => {
  it('lists the free ranks below the highest in use', () => {
    assert.deepEqual(rankHoles([]), [])
    assert.deepEqual(rankHoles([1, 2, 3]), [])
    assert.deepEqual(rankHoles([2, 5, 3]), [1, 4])
  })
})

describe('strictestRules', () => {
  it('takes the later start, the earlier end and the smaller quantity (null = unlimited)', () => {
    const other: CouponRules = { couponId: 1, totalQuantity: 5, issueStart: 1500, issueEnd: 3000 }
    assert.deepEqual(strictestRules(rules, other), {
      couponId: 1,
      totalQuantity: 2,
      issueStart: 1500,
      issueEnd: 2000,
      drawAt: null,
    })
    assert.deepEqual(strictestRules(other, rules), strictestRules(rules, other))
    const unlimited = { ...rules, totalQuantity: null }
    assert.equal(strictestRules(unlimited, other).totalQuantity, 5)
    assert.equal(strictestRules(other, unlimited).totalQuantity, 5)
    assert.equal(strictestRules(unlimited, unlimited).totalQuantity, null)
  })

  it('keeps a draw while either has one, at the later drawAt', () => {
    const drawn = { ...rules, drawAt: 1800 }
    assert.equal(strictestRules(rules, drawn).drawAt, 1800)
    assert.equal(strictestRules(drawn, rules).drawAt, 1800)
    assert.equal(strictestRules(drawn, { ...rules, drawAt: 1900 }).drawAt, 1900)
  })

  it('may leave no window at all: nothing can be won under it', () => {
    const later: CouponRules = { couponId: 1, totalQuantity: 2, issueStart: 5000, issueEnd: 6000 }
    const none = strictestRules(rules, later)
    for (const now of [999, 1500, 2500, 5500, 6500]) assert.notEqual(windowRefusal(none, now), null)
  })
})
