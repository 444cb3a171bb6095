/**
 * The Redis gate rebuilding a coupon it has lost, from the database (the system of
 * record) plus the wins still queued in the stream.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { insertWins } from '../../src/db/issues-repo.js'
import type { IssueOutcome } from '../../src/domain/coupon.js'
import { insertRulesCoupon } from '../helpers/databases.js'
import { createRedisGate, type RedisGateUnderTest } from '../helpers/gates.js'
import { REDIS_URL } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'

const T0 = Date.UTC(2026, 10, 24, 4)
const rank = (o: IssueOutcome) => (o.won ? o.win.rank : o.refusal)

describe('Redis gate rebuild', { skip: await skipUnless('redis') }, () => {
  let g: RedisGateUnderTest
  const rebuilds: [number, number][] = []

  before(async () => {
    g = await createRedisGate({
      env: { REDIS_URL },
      onRebuild: (id, n) => rebuilds.push([id, n]),
    })
  })
  after(async () => g?.dispose())

  /** A coupon the database has and the gate has not been told of. */
  const coupon = (totalQuantity: number | null) =>
    insertRulesCoupon(g.db, { totalQuantity, issueStart: T0, issueEnd: T0 + 3_600_000 }, 'rebuild')

  const wipe = async (id: number) => {
    const k = g.keys.coupon(id)
    await g.client.del(k.meta, k.users, k.holes, k.stream)
  }

  it('loads a coupon it has never seen from the database on first use', async () => {
    const id = await coupon(2)
    await insertWins(g.db, [{ couponId: id, userId: 'old', rank: 1, issuedAt: T0 }], new Date())
    assert.equal(rank(await g.gate.tryIssue(id, 'old', T0 + 1)), 'ALREADY_ISSUED')
    assert.equal(rank(await g.gate.tryIssue(id, 'new', T0 + 1)), 2)
    assert.equal(rank(await g.gate.tryIssue(id, 'late', T0 + 1)), 'SOLD_OUT')
  })

  it('answers lookupLoaded NOT_LOADED for a lost coupon, without loading it', async () => {
    const id = await coupon(5)
    assert.equal((await g.gate.tryIssue(id, 'a', T0)).won, true)
    await wipe(id)
    rebuilds.length = 0
    assert.equal(await g.gate.lookupLoaded(id, 'a'), 'NOT_LOADED')
    assert.equal(await g.client.exists(g.keys.coupon(id).meta), 0)
    assert.deepEqual(rebuilds, [])
  })

  it('answers COUPON_NOT_FOUND for a coupon the database does not have, creating no keys', async () => {
    assert.equal(rank(await g.gate.tryIssue(424_242, 'u', T0)), 'COUPON_NOT_FOUND')
    assert.equal(await g.client.exists(g.keys.coupon(424_242).meta), 0)
  })

  it('after a wipe, persisted winners stay winners and the count goes on', async () => {
    const id = await coupon(5)
    for (const u of ['a', 'b', 'c']) await g.gate.tryIssue(id, u, T0)
    await insertWins(
      g.db,
      ['a', 'b', 'c'].map((u, i) => ({ couponId: id, userId: u, rank: i + 1, issuedAt: T0 })),
      new Date(),
    )
    await wipe(id)
    assert.equal(rank(await g.gate.tryIssue(id, 'b', T0)), 'ALREADY_ISSUED')
    assert.equal(rank(await g.gate.tryIssue(id, 'd', T0)), 4)
    assert.equal(await g.gate.won(id), 4)
  })

  it('hands out the ranks missing from the database first, ending with 1..total', async () => {
    const id = await coupon(5)
    await insertWins(
      g.db,
      [
        { couponId: id, userId: 'r1', rank: 1, issuedAt: T0 },
        { couponId: id, userId: 'r2', rank: 2, issuedAt: T0 },
        { couponId: id, userId: 'r4', rank: 4, issuedAt: T0 },
      ],
      new Date(),
    )
    const ranks = []
    for (const u of ['x', 'y', 'z']) ranks.push(rank(await g.gate.tryIssue(id, u, T0)))
    assert.deepEqual(ranks, [3, 5, 'SOLD_OUT'])
  })

  it('keeps wins still queued in the stream when only the rest of the state was lost', async () => {
    const id = await coupon(3)
    await g.gate.tryIssue(id, 'queued', T0)
    const k = g.keys.coupon(id)
    await g.client.del(k.meta, k.users)
    assert.equal(rank(await g.gate.tryIssue(id, 'queued', T0)), 'ALREADY_ISSUED')
    assert.equal(rank(await g.gate.tryIssue(id, 'next', T0)), 2)
  })

  it('sends its scripts again when Redis has forgotten them (NOSCRIPT), a batch at a time', async () => {
    const id = await coupon(3)
    assert.equal(rank(await g.gate.tryIssue(id, 'first', T0)), 1)
    await g.client.script('FLUSH')
    const outcomes = await Promise.all(
      ['a', 'first', 'b', 'c'].map((u) => g.gate.tryIssue(id, u, T0 + 1)),
    )
    assert.deepEqual(outcomes.map(rank), [2, 'ALREADY_ISSUED', 3, 'SOLD_OUT'])
  })

  it('rebuilds once for a burst of concurrent requests, without overselling', async () => {
    const id = await coupon(50)
    await g.gate.tryIssue(id, 'warm', T0)
    await wipe(id)
    rebuilds.length = 0
    const outcomes = await Promise.all(
      Array.from({ length: 500 }, (_, i) => g.gate.tryIssue(id, `u${i}`, T0)),
    )
    assert.equal(outcomes.filter((o) => o.won).length, 50)
    assert.deepEqual(
      rebuilds.filter(([c]) => c === id),
      [[id, 0]],
    )
  })

  it('configures a coupon whose state was lost only once it is loaded, checking the quantity against the database', async () => {
    const id = await coupon(5)
    await insertWins(
      g.db,
      ['p', 'q', 'r'].map((u, i) => ({ couponId: id, userId: u, rank: i + 1, issuedAt: T0 })),
      new Date(),
    )
    const rules = { couponId: id, issueStart: T0, issueEnd: T0 + 3_600_000 }
    // Never a load from configure (its caller may hold the row lock a load takes).
    assert.equal(await g.gate.configure({ ...rules, totalQuantity: 4 }), 'NOT_LOADED')
    assert.equal(await g.client.exists(g.keys.coupon(id).meta), 0)
    assert.equal(await g.gate.won(id), 3, 'loaded from the database')
    assert.equal(await g.gate.configure({ ...rules, totalQuantity: 2 }), 'QUANTITY_BELOW_ISSUED')
    assert.equal(await g.gate.configure({ ...rules, totalQuantity: 4 }), 'OK')
    assert.equal(rank(await g.gate.tryIssue(id, 's', T0)), 4)
    assert.equal(rank(await g.gate.tryIssue(id, 't', T0)), 'SOLD_OUT')
  })
})
