/**
 * A gate rebuilt from the system of record still knows which request won each
 * coupon: the in-process gate restored at start, and the Redis gate rebuilt after
 * Redis lost a coupon's state (from the rows, and from the wins still queued in
 * the stream). The same request asked again gets its win with the same rank; any
 * other request of the user is ALREADY_ISSUED.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { insertWins, listWins } from '../../src/db/issues-repo.js'
import type { CouponRules, IssueOutcome } from '../../src/domain/coupon.js'
import { MemoryStockGate } from '../../src/gate/memory-stock-gate.js'
import { insertRulesCoupon } from '../helpers/databases.js'
import { createRedisGate, type RedisGateUnderTest } from '../helpers/gates.js'
import { REDIS_URL } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'

const T0 = Date.UTC(2026, 10, 24, 4)
const HOUR = 3_600_000
const rank = (o: IssueOutcome) => (o.won ? o.win.rank : o.refusal)

describe('the in-process gate restored from the rows', () => {
  it('gives a request its win again after a restart, sold out or closed', async () => {
    const rules: CouponRules = {
      couponId: 1,
      totalQuantity: 2,
      issueStart: T0,
      issueEnd: T0 + HOUR,
    }
    const before = new MemoryStockGate()
    await before.register(rules)
    const won = await before.tryIssue(1, 'u', T0, 'key-1')
    await before.tryIssue(1, 'v', T0, '~process.7')
    assert.equal(rank(won), 1)
    // What the rows hold, read back as listWins returns them.
    const restored = new MemoryStockGate()
    const wins = [await before.lookup(1, 'u'), await before.lookup(1, 'v')].filter(
      (w) => w !== null,
    )
    restored.restore(rules, wins)
    assert.deepEqual(await restored.tryIssue(1, 'u', T0, 'key-1'), won)
    assert.deepEqual(await restored.tryIssue(1, 'u', T0 + HOUR, 'key-1'), won, 'after the window')
    assert.equal(rank(await restored.tryIssue(1, 'u', T0, 'key-2')), 'ALREADY_ISSUED')
    assert.equal(rank(await restored.tryIssue(1, 'u', T0)), 'ALREADY_ISSUED')
    assert.equal(rank(await restored.tryIssue(1, 'w', T0, 'key-1')), 'SOLD_OUT')
    assert.equal(await restored.won(1), 2)
  })
})

describe('the Redis gate rebuilt from the database and its stream', {
  skip: await skipUnless('redis'),
}, () => {
  let g: RedisGateUnderTest
  before(async () => {
    g = await createRedisGate({ env: { REDIS_URL } })
  })
  after(async () => g?.dispose())

  const coupon = (totalQuantity: number) =>
    insertRulesCoupon(g.db, { totalQuantity, issueStart: T0, issueEnd: T0 + HOUR }, 'ids')

  it('keeps the request ids of persisted wins and of wins still queued', async () => {
    const id = await coupon(3)
    const persisted = await g.gate.tryIssue(id, 'p', T0, 'key-p:1')
    const queued = await g.gate.tryIssue(id, 'q', T0, 'key-q')
    assert.equal(rank(persisted), 1)
    assert.equal(rank(queued), 2)
    // p's win became a row, as the worker writes it (with its entry's id).
    const p = await g.gate.lookup(id, 'p')
    assert.ok(p)
    await insertWins(g.db, [p], new Date())
    assert.equal((await listWins(g.db, id))[0]?.requestId, 'key-p:1')
    // Redis loses the coupon's state but the stream (p's entry acknowledged or not).
    const k = g.keys.coupon(id)
    await g.client.del(k.meta, k.users, k.holes)

    assert.deepEqual(await g.gate.tryIssue(id, 'p', T0 + HOUR, 'key-p:1'), persisted)
    assert.deepEqual(await g.gate.tryIssue(id, 'q', T0, 'key-q'), queued)
    assert.equal(rank(await g.gate.tryIssue(id, 'p', T0, 'key-p:2')), 'ALREADY_ISSUED')
    assert.equal(rank(await g.gate.tryIssue(id, 'q', T0)), 'ALREADY_ISSUED')
    assert.equal(rank(await g.gate.tryIssue(id, 'r', T0, 'key-r')), 3)
    assert.equal(rank(await g.gate.tryIssue(id, 's', T0, 'key-p:1')), 'SOLD_OUT')
  })
})
