/**
 * The stream worker's packed path on every dialect: first deliveries are inserted
 * without ON CONFLICT (PostgreSQL), so a win already in the database must send
 * the batch down the idempotent path, not fail it; and two workers acknowledging
 * out of order (the stream is trimmed, not deleted entry by entry) must still
 * leave the stream empty and every win persisted once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { insertWins } from '../../src/db/issues-repo.js'
import { DIALECTS, skipUnlessDialect } from '../helpers/databases.js'
import { countIssues, duplicatePairs } from '../helpers/issue-counts.js'
import { skipUnless } from '../helpers/services.js'
import { type WorkerFixture, workerFixture } from '../helpers/stream-worker.js'

for (const dialect of DIALECTS) {
  describe(`stream worker, packed wins (${dialect})`, {
    skip: (await skipUnless('redis')) || (await skipUnlessDialect(dialect)),
  }, () => {
    let f: WorkerFixture
    before(async () => {
      f = await workerFixture(dialect, 'worker-packed-test')
    })
    after(async () => f?.dispose())

    const worker = (batchSize: number, txRows: number) => f.worker({ batchSize, txRows })

    async function assertDrained(couponId: number, wins: number) {
      const { client, keys, db } = f
      const k = keys.coupon(couponId)
      assert.equal(await countIssues(db, couponId), wins)
      assert.equal(await duplicatePairs(db, couponId), 0)
      assert.equal(await client.xlen(k.stream), 0, 'stream empty')
      const pending = (await client.xpending(k.stream, 'persist')) as [number]
      assert.equal(Number(pending[0]), 0, 'nothing pending')
      assert.equal(await client.xlen(k.dead), 0, 'nothing dead-lettered')
    }

    it('a first delivery already in the database is skipped, not an error', async () => {
      const { couponId, ranks, now } = await f.queuedCoupon(1500)
      // As if a previous worker had committed these rows and then lost its stream
      // state: they come again as new entries.
      const already = ['u3', 'u700', 'u1499'].map((userId) => ({
        couponId,
        userId,
        rank: ranks.get(userId) as number,
        issuedAt: now,
      }))
      await insertWins(f.db, already, new Date())
      assert.equal(await worker(1000, 10_000).drainOnce(), 1500)
      assert.equal(await countIssues(f.db, couponId), 1500)
      await assertDrained(couponId, 1500)
    })

    it('two workers acknowledging out of order leave the stream empty', async () => {
      const { couponId } = await f.queuedCoupon(2500)
      const a = worker(100, 300)
      const b = worker(70, 200)
      let handled = 0
      while (handled < 2500) {
        const [x, y] = await Promise.all([a.drainOnce(), b.drainOnce()])
        handled += x + y
        if (x + y === 0) break
      }
      assert.equal(handled, 2500)
      await assertDrained(couponId, 2500)
    })
  })
}
