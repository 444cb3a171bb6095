/**
 * The stream worker as real `firstcome worker` processes on PostgreSQL: killed -9
 * mid-drain, several at once, and fed poison entries. Wins are made first by the
 * test process's own gate (no worker there), so the workers find a backlog.
 * Every run ends with: each win a row exactly once with its rank, issued_quantity
 * equal to the rows, the stream empty and nothing pending.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { countIssues } from '../helpers/issue-counts.js'
import type { ServiceProcess } from '../helpers/processes.js'
import { redisSuite, type Service, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import {
  assertWinsPersisted,
  checkRows,
  oneTo,
  sortedRanks,
  users,
  waitFor,
} from '../helpers/storm.js'

describe('stream workers as real processes (PostgreSQL)', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()
  /** Wins are made through its gate; it runs no worker. */
  let t: Service

  before(async () => {
    t = await suite.start({ worker: false })
  })

  const win = (couponId: number, userIds: string[]) => winInProcess(t, couponId, userIds)
  const rows = (couponId: number) => countIssues(suite.db, couponId)

  /** Every win a row, stream empty, nothing pending; then the full row check. */
  async function assertDrained(couponId: number, wins: Map<string, number>, timeoutMs = 30_000) {
    const stream = suite.keys.coupon(couponId).stream
    await waitFor(
      `coupon ${couponId}: ${wins.size} rows and an empty stream`,
      async () =>
        (await rows(couponId)) === wins.size &&
        (await suite.redis.xlen(stream)) === 0 &&
        (await suite.pending(couponId)) === 0,
      timeoutMs,
    )
    const view = await checkRows(suite.db, couponId)
    assert.equal(view.rows, wins.size)
    assertWinsPersisted(wins, view)
    return view
  }

  /** Freezes the worker at a moment it holds unacknowledged entries, then kill -9. */
  async function killHoldingEntries(worker: ServiceProcess, couponId: number): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
      worker.signal('SIGSTOP')
      const held = await suite.pending(couponId)
      if (held > 0) {
        worker.signal('SIGKILL')
        await worker.exited
        return held
      }
      worker.signal('SIGCONT')
      await new Promise((resolve) => setTimeout(resolve, 3))
    }
    throw new Error('the worker never held a batch')
  }

  it('a worker killed -9 mid-drain: the next one reclaims its batch; 20,000 rows, each once', async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: null })
    const wins = await win(couponId, users('k', 0, 20_000))
    assert.deepEqual(sortedRanks(wins.values()), oneTo(20_000))
    assert.equal(await rows(couponId), 0)

    const a = await suite.startWorkerProcess({ WORKER_BATCH_SIZE: '50' })
    await waitFor('worker A to persist 2,000 rows', async () => (await rows(couponId)) >= 2000)
    const held = await killHoldingEntries(a, couponId)
    const persistedByA = await rows(couponId)
    assert.ok(persistedByA < 20_000, `A finished before it could be killed (${persistedByA})`)

    const b = await suite.startWorkerProcess({
      WORKER_BATCH_SIZE: '500',
      WORKER_CLAIM_IDLE_MS: '300',
    })
    const view = await assertDrained(couponId, wins)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(20_000))
    assert.match(b.output(), /reclaimed wins left pending by another worker/)
    assert.ok(held > 0)

    b.signal('SIGTERM')
    assert.deepEqual(await b.exited, { code: 0, signal: null }, 'graceful stop')
  })

  it('two, then three workers at once: every fresh win persisted exactly once', async () => {
    const first = await createCoupon(t.app, { totalQuantity: null })
    const firstWins = await win(first, users('two-', 0, 6000))
    const pair = await Promise.all([
      suite.startWorkerProcess({ WORKER_BATCH_SIZE: '100' }),
      suite.startWorkerProcess({ WORKER_BATCH_SIZE: '100' }),
    ])
    await assertDrained(first, firstWins)
    for (const w of pair) w.signal('SIGTERM')
    for (const w of pair) assert.equal((await w.exited).code, 0)

    // Three workers over two coupons, while the gate keeps accepting wins.
    const c1 = await createCoupon(t.app, { totalQuantity: null })
    const c2 = await createCoupon(t.app, { totalQuantity: 6000 })
    const wins1 = await win(c1, users('three-', 0, 4000))
    const wins2 = await win(c2, users('three-', 0, 4000))
    const trio = await Promise.all(
      [1, 2, 3].map(() => suite.startWorkerProcess({ WORKER_BATCH_SIZE: '100' })),
    )
    for (const [userId, rank] of await win(c1, users('three-', 4000, 6000))) wins1.set(userId, rank)
    for (const [userId, rank] of await win(c2, users('three-', 4000, 6000))) wins2.set(userId, rank)
    const view1 = await assertDrained(c1, wins1)
    const view2 = await assertDrained(c2, wins2)
    assert.deepEqual(sortedRanks(view1.ranks.values()), oneTo(6000))
    assert.deepEqual(sortedRanks(view2.ranks.values()), oneTo(6000))
    for (const w of trio) w.signal('SIGTERM')
    for (const w of trio) assert.equal((await w.exited).code, 0)
  })

  it('poison entries land in the dead-letter stream with a reason; the good wins persist', async () => {
    const couponId = await createCoupon(t.app, { totalQuantity: null })
    const k = suite.keys.coupon(couponId)
    const wins = await win(couponId, users('p', 0, 500))
    const now = String(Date.now())
    // Not a win at all, a bad rank, a win the gate never granted, and one the gate
    // holds but the database refuses (a user id longer than the column).
    const tooLong = 'L'.repeat(80)
    await suite.redis.xadd(k.stream, '*', 'x', 'y')
    await suite.redis.xadd(k.stream, '*', 'u', 'bad-rank', 'r', 'first', 't', now)
    await suite.redis.xadd(k.stream, '*', 'u', 'ghost', 'r', '999999', 't', now)
    await suite.redis.hset(k.users, tooLong, `501:${now}`)
    await suite.redis.xadd(k.stream, '*', 'u', tooLong, 'r', '501', 't', now)
    for (const [userId, rank] of await win(couponId, users('p', 500, 1000))) wins.set(userId, rank)

    const worker = await suite.startWorkerProcess({
      WORKER_BATCH_SIZE: '100',
      WORKER_MAX_ATTEMPTS: '3',
    })
    await assertDrained(couponId, wins)

    const dead = (await suite.redis.xrange(k.dead, '-', '+')) as [string, string[]][]
    const byUser = new Map(
      dead.map(([, fields]) => {
        const f = new Map<string, string>()
        for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] ?? '', fields[i + 1] ?? '')
        return [f.get('u') ?? `(${f.get('x') === 'y' ? 'no user' : '?'})`, f.get('reason') ?? '']
      }),
    )
    assert.equal(dead.length, 4, JSON.stringify([...byUser]))
    assert.match(byUser.get('(no user)') ?? '', /malformed/)
    assert.match(byUser.get('bad-rank') ?? '', /malformed/)
    assert.match(byUser.get('ghost') ?? '', /not in the gate/)
    assert.match(byUser.get(tooLong) ?? '', /rejected 3 times/)
    assert.match(worker.output(), /win moved to the dead-letter stream/)
    worker.signal('SIGTERM')
    assert.equal((await worker.exited).code, 0)
  })
})
