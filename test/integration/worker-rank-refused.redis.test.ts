/**
 * The stream worker meets a win whose rank the database already holds for another
 * user (a gate behind the database handed it out again): the database refuses
 * the row (migration 003), and the worker loses that win for good, at once: it
 * is dead-lettered, counted (firstcome_wins_lost_total{cause="rank_taken"}),
 * logged with its user, and the gate is marked behind, so it catches up before
 * its next answer. The rest of the batch is persisted. On every dialect (the
 * packed path on PostgreSQL, the row path elsewhere).
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { persistWins } from '../../src/db/issues-repo.js'
import { Metrics } from '../../src/ops/metrics.js'
import { persistKindFor } from '../../src/queue/persist/strategy.js'
import { RedisStreamWorker } from '../../src/queue/redis-stream-worker.js'
import { DIALECTS, skipUnlessDialect } from '../helpers/databases.js'
import { metricValue } from '../helpers/metrics.js'
import { skipUnless } from '../helpers/services.js'
import { checkRows } from '../helpers/storm.js'
import { type WorkerFixture, workerFixture } from '../helpers/stream-worker.js'

for (const dialect of DIALECTS) {
  describe(`a win whose rank the database holds, on ${dialect}`, {
    skip: (await skipUnless('redis')) || (await skipUnlessDialect(dialect)),
  }, () => {
    let f: WorkerFixture
    before(async () => {
      f = await workerFixture(dialect, 'firstcome-rank-refused')
    })
    after(async () => f?.dispose())

    it('is dead-lettered, counted and logged as lost; the gate catches up', async () => {
      const now = Date.now()
      const couponId = await f.addCoupon({
        totalQuantity: 5,
        issueStart: now - 1000,
        issueEnd: now + 3_600_000,
      })
      const won = async (user: string) => {
        const o = await f.gate.tryIssue(couponId, user, now)
        return o.won ? o.win.rank : o.refusal
      }
      assert.equal(await won('a'), 1)
      // A row the gate does not know of (it forgot it): rank 2 is v's.
      await persistWins(f.db, [{ couponId, userId: 'v', rank: 2, issuedAt: now }], new Date())
      assert.equal(await won('w'), 2, 'the gate, behind, gives rank 2 again')
      assert.equal(await won('x'), 3)

      const metrics = new Metrics()
      const lines: Record<string, unknown>[] = []
      const sink = new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)))
          done()
        },
      })
      const worker = new RedisStreamWorker({
        client: f.client,
        keys: f.keys,
        db: f.db,
        logger: pino({ level: 'info' }, sink),
        metrics,
        batchSize: 1000,
        txRows: 10_000,
        claimIdleMs: 60_000,
        maxAttempts: 3,
        markBehind: (id) => f.state.markBehind(id),
        persist: persistKindFor(dialect),
      })
      assert.equal(await worker.drainOnce(), 3)

      const view = await checkRows(f.db, couponId)
      assert.deepEqual(
        Object.fromEntries(view.ranks),
        { a: 1, v: 2, x: 3 },
        'the rest of the batch is persisted',
      )
      const k = f.keys.coupon(couponId)
      assert.equal(await f.client.xlen(k.stream), 0, 'nothing left pending')
      const dead = await f.client.xrange(k.dead, '-', '+')
      assert.equal(dead.length, 1)
      assert.ok(dead[0]?.[1].includes('w'), 'w is in the dead letters')
      assert.equal(await metricValue(metrics.winsLost, { cause: 'rank_taken' }), 1)
      const lost = lines.filter((l) => l.event === 'win.lost')
      assert.deepEqual(
        lost.map((l) => [l.userId, l.rank, l.cause]),
        [['w', 2, 'rank_taken']],
      )
      // Marked behind: the next answer comes from a gate caught up with the rows.
      assert.equal(await won('y'), 4)
      assert.equal(await won('v'), 'ALREADY_ISSUED')
    })
  })
}
