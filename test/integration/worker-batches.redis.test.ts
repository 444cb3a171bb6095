/**
 * The stream worker with a backlog: several reads gathered into one transaction,
 * every entry acknowledged and out of the stream (in slices small enough for Lua's unpack);
 * and a worker that finds the gate state lost before any request rebuilt it.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { countIssues, duplicatePairs } from '../helpers/issue-counts.js'
import { skipUnless } from '../helpers/services.js'
import { type WorkerFixture, workerFixture } from '../helpers/stream-worker.js'

const WINS = 12_000

describe('stream worker batches', { skip: await skipUnless('redis') }, () => {
  let f: WorkerFixture
  before(async () => {
    f = await workerFixture('sqlite', 'worker-batches-test')
  })
  after(async () => f?.dispose())

  const worker = (ensureLoaded?: (couponId: number) => Promise<boolean>) =>
    f.worker({ ensureLoaded })

  it('persists 12,000 queued wins in transactions of 10,000 + 2,000 and empties the stream', async () => {
    const { couponId } = await f.queuedCoupon(WINS)
    const { client, keys, db } = f
    const stream = keys.coupon(couponId).stream
    // One pass: a transaction of 10,000 (ten reads of 1,000), the next 2,000 read
    // while it is written, then a transaction of those.
    assert.equal(await worker().drainOnce(), WINS)
    assert.equal(await countIssues(db, couponId), WINS)
    assert.equal(await duplicatePairs(db, couponId), 0)
    assert.equal(await client.xlen(stream), 0)
    const pending = (await client.xpending(stream, 'persist')) as [number]
    assert.equal(Number(pending[0]), 0)
  })

  it('holds its batch while the gate state is lost, has it rebuilt, then persists every win', async () => {
    const { couponId } = await f.queuedCoupon(300, 1000)
    const { client, gate, state, keys, db } = f
    const k = keys.coupon(couponId)
    // Redis lost the gate's hashes but not the stream, and no request came yet.
    await client.del(k.meta, k.users, k.holes)
    const w = worker((id) => state.ensureLoaded(id))
    await assert.rejects(w.drainOnce(), { name: 'GateNotLoaded' })
    assert.equal(await client.exists(k.meta), 1, 'the worker had the gate rebuilt')
    assert.equal(await w.drainOnce(), 300)
    assert.equal(await countIssues(db, couponId), 300)
    assert.equal(await client.xlen(k.dead), 0, 'nothing dead-lettered')
    assert.equal(await gate.won(couponId), 300)
    const again = await gate.tryIssue(couponId, 'u7', Date.now())
    assert.deepEqual(again, { won: false, refusal: 'ALREADY_ISSUED' })
  })
})
