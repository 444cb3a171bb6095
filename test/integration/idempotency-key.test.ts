/**
 * Embedded mode (PostgreSQL): a client's retry with the same Idempotency-Key
 * after a 503 gets the original answer, and in this mode a 201 means the win is
 * committed. The database turns read-only (a test database of its own), so the
 * group commit fails: the first request hears 503 while its win stays granted and
 * is retried. A retry with the key hears 503 too as long as nothing is committed,
 * then 201 with the same rank once the row is there; a request without the key is
 * ALREADY_ISSUED, as before.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { findIssue } from '../../src/db/issues-repo.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { resetReadOnly, setReadOnly } from '../helpers/db-faults.js'
import { waitFor } from '../helpers/storm.js'

describe('Idempotency-Key in embedded mode (PostgreSQL read-only for a while)', {
  skip: await skipUnlessDialect('postgres'),
}, () => {
  let url: string
  let t: TestApp
  before(async () => {
    url = await createDatabaseUrl('postgres')
    t = await startApp({ databaseUrl: url })
  })
  after(async () => {
    await t?.close()
    if (url) await dropDatabaseUrl(url)
  })

  const issue = (couponId: number, userId: string, key?: string) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/coupons/${couponId}/issues`,
      headers: key ? { 'idempotency-key': key } : {},
      payload: { userId },
    })

  it('answers a retry 503 until the win is committed, then 201 with the same rank', async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: 10 })
    assert.equal((await issue(couponId, 'first')).statusCode, 201)
    await setReadOnly(url)
    let committedBefore = false
    try {
      const res = await issue(couponId, 'u', 'attempt-1')
      assert.equal(res.statusCode, 503, res.body)
      const retry = await issue(couponId, 'u', 'attempt-1')
      assert.equal(retry.statusCode, 503, 'no 201 before the win is committed')
      committedBefore = (await findIssue(t.container.database.db, couponId, 'u')) !== null
    } finally {
      await resetReadOnly(url)
    }
    assert.equal(committedBefore, false)
    const retried = await waitFor('a 201 for the retry', async () => {
      const res = await issue(couponId, 'u', 'attempt-1')
      return res.statusCode === 201 ? res : null
    })
    const row = await findIssue(t.container.database.db, couponId, 'u')
    assert.ok(row, 'the win is a row')
    assert.deepEqual(retried.json(), { couponId, userId: 'u', rank: row.rank })
    assert.equal(row.rank, 2)
    assert.equal((await issue(couponId, 'u')).json().code, 'ALREADY_ISSUED')
    assert.equal((await issue(couponId, 'u', 'attempt-2')).json().code, 'ALREADY_ISSUED')
    const stats = await t.app.inject({ method: 'GET', url: `/v1/coupons/${couponId}/stats` })
    assert.equal(stats.json().persisted, 2)
  })
})
