/**
 * The embedded group commit, on a real SQLite file: one transaction per tick,
 * answers only after the commit, 503 and retry while the database is busy, a
 * refused win that does not take the others down, and metrics that count rows.
 */
import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { sql } from 'kysely'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { sqlitePath } from '../../src/db/database.js'
import { persistWins } from '../../src/db/issues-repo.js'
import type { Win } from '../../src/domain/coupon.js'
import { UnavailableError } from '../../src/domain/errors.js'
import { Metrics } from '../../src/ops/metrics.js'
import { GroupCommitRecorder } from '../../src/queue/group-commit-recorder.js'
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { countIssues } from '../helpers/issue-counts.js'

describe('GroupCommitRecorder', () => {
  let t: TestDatabase
  let couponId: number
  const errors: unknown[] = []
  let recorder: GroupCommitRecorder

  before(async () => {
    t = await createTestDatabase('sqlite')
    // Fail fast instead of waiting 5 s for a lock held by the test.
    await sql`pragma busy_timeout = 20`.execute(t.database.db)
    const c = await insertCoupon(
      t.database.db,
      {
        title: 'gc',
        totalQuantity: null,
        discountAmount: 0,
        minAvailableAmount: 0,
        issueStart: new Date(0),
        issueEnd: new Date(4_000_000_000_000),
      },
      new Date(),
    )
    couponId = c.id
    recorder = new GroupCommitRecorder(t.database, { onError: (err) => errors.push(err) })
  })
  after(async () => t?.drop())

  const win = (userId: string, rank: number, coupon = couponId): Win => ({
    couponId: coupon,
    userId,
    rank,
    issuedAt: Date.now(),
  })

  it('writes every win handed in during one tick, and answers after the commit', async () => {
    const wins = Array.from({ length: 300 }, (_, i) => win(`tick-${i}`, i + 1))
    const answered = await Promise.all(
      wins.map(async (w) => {
        await recorder.record(w)
        // by the time a caller hears back, its row is there
        const row = await t.database.db
          .selectFrom('coupon_issues')
          .select('rank')
          .where('user_id', '=', w.userId)
          .executeTakeFirst()
        return row?.rank
      }),
    )
    assert.deepEqual(
      answered,
      wins.map((w) => w.rank),
    )
  })

  it('answers 503 while the database is locked, keeps the win, and writes it once it is free', async () => {
    const before = await countIssues(t.database.db, couponId)
    const other = new DatabaseSync(sqlitePath(t.url))
    other.exec('begin exclusive')
    try {
      await assert.rejects(recorder.record(win('busy-1', 10_001)), UnavailableError)
    } finally {
      other.exec('rollback')
      other.close()
    }
    await recorder.drain()
    assert.equal(await countIssues(t.database.db, couponId), before + 1)
    assert.ok(errors.length > 0)
  })

  it('writes the good wins of a batch the database partly refuses', async () => {
    const before = await countIssues(t.database.db, couponId)
    const results = await Promise.allSettled([
      recorder.record(win('good-1', 20_001)),
      recorder.record(win('ghost', 1, 987_654_321)), // no such coupon: refused for good
      recorder.record(win('good-2', 20_002)),
    ])
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    )
    await recorder.drain()
    assert.equal(await countIssues(t.database.db, couponId), before + 2)
  })
  it('counts the rows it added, not a win that is a row already', async () => {
    const metrics = new Metrics()
    const counting = new GroupCommitRecorder(t.database, { metrics })
    const first = win('counted-1', 30_001)
    // a spend persisted this QUEUED win first
    await persistWins(t.database.db, [first], new Date())
    await Promise.all([counting.record(first), counting.record(win('counted-2', 30_002))])
    await counting.drain()
    const persisted = (await metrics.persisted.get()).values
    assert.deepEqual(
      persisted.map((v) => [v.labels.coupon, v.value]),
      [[String(couponId), 1]],
    )
    const batch = (await metrics.persistBatch.get()).values
    const sum = batch.find((v) => v.metricName === 'firstcome_persist_batch_size_sum')
    assert.equal(sum?.value, 2, 'the batch is the wins it was given')
  })

  it('closes once the wins in hand are written, or reports those it could not write', async () => {
    const unwritten: number[] = []
    const closing = new GroupCommitRecorder(t.database, { onUnwritten: (n) => unwritten.push(n) })
    const before = await countIssues(t.database.db, couponId)
    await closing.record(win('closed-1', 40_001))
    await closing.close(1_000)
    assert.deepEqual(unwritten, [], 'nothing left in hand')

    const other = new DatabaseSync(sqlitePath(t.url))
    other.exec('begin exclusive')
    try {
      await assert.rejects(closing.record(win('closed-2', 40_002)), UnavailableError)
      await closing.close(50)
      assert.deepEqual(unwritten, [1], 'the win the locked database never took')
    } finally {
      other.exec('rollback')
      other.close()
    }
    await closing.drain()
    assert.equal(await countIssues(t.database.db, couponId), before + 2)
  })
})
