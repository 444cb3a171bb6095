/**
 * SpendService on a QUEUED win (a win the gate holds that is not yet a row),
 * over a SQLite database: the win becomes a row, used and counted once; a gate
 * that has lost the coupon while the row lock is held is loaded outside the lock
 * and the spend tried once more; lost twice, the spend is 503, nothing written;
 * a win the gate no longer holds is NOT_ISSUED, nothing written.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { findCoupon } from '../../src/db/coupons-repo.js'
import type { Db } from '../../src/db/database.js'
import { findIssue } from '../../src/db/issues-repo.js'
import { rulesOf, type Win } from '../../src/domain/coupon.js'
import { UnavailableError } from '../../src/domain/errors.js'
import { MemoryStockGate } from '../../src/gate/memory-stock-gate.js'
import { Metrics } from '../../src/ops/metrics.js'
import { SpendService } from '../../src/service/spend-service.js'
import { createTestDatabase, insertRulesCoupon, type TestDatabase } from '../helpers/databases.js'

const NOW = Date.UTC(2026, 10, 24, 4)

/** The in-process gate, made to answer NOT_LOADED under the lock `lost` times. */
class LosingGate extends MemoryStockGate {
  lost = 0
  loads = 0
  /** under the lock, the gate holds no win (lost, then rebuilt without it) */
  forgot = false

  override async lookupLoaded(couponId: number, userId: string) {
    if (this.forgot) return null
    if (this.lost > 0) {
      this.lost--
      return 'NOT_LOADED' as const
    }
    return super.lookup(couponId, userId)
  }

  override async lookup(couponId: number, userId: string): Promise<Win | null> {
    this.loads++
    return super.lookup(couponId, userId)
  }
}

describe('SpendService on a QUEUED win', () => {
  let t: TestDatabase
  let db: Db
  before(async () => {
    t = await createTestDatabase('sqlite')
    db = t.database.db
  })
  after(async () => t?.drop())

  async function queuedWin(gate: LosingGate, userId: string) {
    const id = await insertRulesCoupon(db, {
      totalQuantity: 10,
      issueStart: NOW - 1000,
      issueEnd: NOW + 1000,
    })
    const coupon = await findCoupon(db, id)
    assert.ok(coupon)
    gate.restore(rulesOf(coupon), [])
    assert.ok((await gate.tryIssue(id, 'first', NOW)).won)
    assert.ok((await gate.tryIssue(id, userId, NOW)).won)
    return id
  }

  it('persists it with its rank, used, issued_quantity counted once', async () => {
    const gate = new LosingGate()
    const spent: number[] = []
    const metrics = new Metrics()
    const persisted = async () =>
      (await metrics.persisted.get()).values.map((v) => [v.labels.coupon, v.value])
    const batches = async () =>
      (await metrics.persistBatch.get()).values.find(
        (v) => v.metricName === 'firstcome_persist_batch_size_count',
      )
    const spends = new SpendService({
      db,
      gate,
      now: () => NOW,
      onSpent: (c) => spent.push(c),
      metrics,
    })
    const id = await queuedWin(gate, 'u')
    const receipt = await spends.use(id, 'u', 'o-1', 0)
    assert.deepEqual(receipt, {
      couponId: id,
      userId: 'u',
      orderId: 'o-1',
      discountAmount: 0,
      usedAt: new Date(NOW),
    })
    const row = await findIssue(db, id, 'u')
    assert.equal(row?.rank, 2)
    assert.equal(row?.orderId, 'o-1')
    assert.equal((await findCoupon(db, id))?.issuedQuantity, 1)
    assert.deepEqual(spent, [id])
    assert.deepEqual(await persisted(), [[String(id), 1]])
    assert.deepEqual((await batches())?.labels, { writer: 'spend' })
    assert.equal((await batches())?.value, 1)
    // A retry reads the row: nothing inserted, nothing counted.
    assert.deepEqual(await spends.use(id, 'u', 'o-1', 0), receipt)
    assert.deepEqual(spent, [id])
    assert.deepEqual(await persisted(), [[String(id), 1]])
    assert.equal((await batches())?.value, 1)
  })

  it('loads a coupon lost under the lock outside it, and tries once more', async () => {
    const gate = new LosingGate()
    const spends = new SpendService({ db, gate, now: () => NOW })
    const id = await queuedWin(gate, 'v')
    gate.lost = 1
    gate.loads = 0
    assert.equal((await spends.use(id, 'v', 'o-2', 0)).orderId, 'o-2')
    assert.equal(gate.loads, 2, 'the first look-up, and the load after NOT_LOADED')
    assert.equal((await findCoupon(db, id))?.issuedQuantity, 1)
  })

  it('answers 503 when the coupon is lost again, and writes nothing', async () => {
    const gate = new LosingGate()
    const spends = new SpendService({ db, gate, now: () => NOW })
    const id = await queuedWin(gate, 'w')
    gate.lost = 2
    await assert.rejects(spends.use(id, 'w', 'o-3', 0), UnavailableError)
    assert.equal(await findIssue(db, id, 'w'), null)
    assert.equal((await findCoupon(db, id))?.issuedQuantity, 0)
  })
  it('answers NOT_ISSUED when the gate no longer holds the win under the lock', async () => {
    const gate = new LosingGate()
    const spends = new SpendService({ db, gate, now: () => NOW })
    const id = await queuedWin(gate, 'x')
    gate.forgot = true
    await assert.rejects(spends.use(id, 'x', 'o-4', 0), { code: 'NOT_ISSUED' })
    assert.equal(await findIssue(db, id, 'x'), null)
    assert.equal((await findCoupon(db, id))?.issuedQuantity, 0)
  })
})
