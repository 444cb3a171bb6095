/**
 * The stream worker as real `firstcome worker` processes on PostgreSQL: killed -9
 * mid-drain, several at once, and fed poison entries. Wins are made first by the
 * test process's own gate (no worker there), so the workers find a backlog.
 * Every run ends with: each win a row exactly once with its rank, issued_quantity
 * equal to the rows, the stream empty and nothing pending.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Redis } from 'ioredis'
import { type Database, openDatabase } from '../../src/db/database.js'
import { countIssues } from '../../src/db/issues-repo.js'
import { PERSIST_GROUP, RedisKeys } from '../../src/redis/keys.js'
import { ADMIN_TOKEN, createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { type ServiceProcess, startWorkerProcess, stopAll } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import {
  assertWinsPersisted,
  checkRows,
  oneTo,
  sortedRanks,
  users,
  waitFor,
} from '../helpers/storm.js'

const skip = (await skipUnless('redis')) || (await skipUnlessDialect('postgres'))

describe('stream workers as real processes (PostgreSQL)', { skip }, () => {
  const prefix = uniquePrefix()
  const keys = new RedisKeys(prefix)
  let databaseUrl = ''
  let t: TestApp | undefined
  let redis: Redis | undefined
  let check: Database | undefined

  const workerEnv = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    ADMIN_TOKEN,
    LOG_LEVEL: 'info',
    ...extra,
  })

  before(async () => {
    databaseUrl = await createDatabaseUrl('postgres')
    t = await startApp({ env: { REDIS_URL, REDIS_KEY_PREFIX: prefix }, databaseUrl })
    redis = redisClient()
    check = openDatabase(databaseUrl, 'postgres', { poolSize: 2 })
  })

  after(async () => {
    await stopAll()
    await t?.close()
    if (redis) {
      await deleteKeys(redis, prefix)
      redis.disconnect()
    }
    await check?.close()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  /** Wins through the gate of the test process; userId → rank. */
  async function win(couponId: number, userIds: string[]): Promise<Map<string, number>> {
    assert.ok(t)
    const wins = new Map<string, number>()
    for (let i = 0; i < userIds.length; i += 2000) {
      const chunk = userIds.slice(i, i + 2000)
      const outcomes = await Promise.all(chunk.map((u) => t?.container.issues.issue(couponId, u)))
      for (const o of outcomes) {
        assert.ok(o?.won, `expected a win, got ${o && !o.won ? o.refusal : o}`)
        wins.set(o.win.userId, o.win.rank)
      }
    }
    return wins
  }

  async function pending(couponId: number): Promise<number> {
    assert.ok(redis)
    const summary = (await redis.xpending(keys.coupon(couponId).stream, PERSIST_GROUP)) as [number]
    return Number(summary[0])
  }

  async function rows(couponId: number): Promise<number> {
    assert.ok(check)
    return countIssues(check.db, couponId)
  }

  /** Every win a row, stream empty, nothing pending; then the full row check. */
  async function assertDrained(couponId: number, wins: Map<string, number>, timeoutMs = 30_000) {
    assert.ok(redis && check)
    const stream = keys.coupon(couponId).stream
    await waitFor(
      `coupon ${couponId}: ${wins.size} rows and an empty stream`,
      async () =>
        (await rows(couponId)) === wins.size &&
        (await redis?.xlen(stream)) === 0 &&
        (await pending(couponId)) === 0,
      timeoutMs,
    )
    const view = await checkRows(check.db, couponId)
    assert.equal(view.rows, wins.size)
    assertWinsPersisted(wins, view)
    return view
  }

  /** Freezes the worker at a moment it holds unacknowledged entries, then kill -9. */
  async function killHoldingEntries(worker: ServiceProcess, couponId: number): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
      worker.signal('SIGSTOP')
      const held = await pending(couponId)
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
    assert.ok(t)
    const couponId = await createCoupon(t.app, { totalQuantity: null })
    const wins = await win(couponId, users('k', 0, 20_000))
    assert.deepEqual(sortedRanks(wins.values()), oneTo(20_000))
    assert.equal(await rows(couponId), 0)

    const a = await startWorkerProcess(workerEnv({ WORKER_BATCH_SIZE: '50' }))
    await waitFor('worker A to persist 2,000 rows', async () => (await rows(couponId)) >= 2000)
    const held = await killHoldingEntries(a, couponId)
    const persistedByA = await rows(couponId)
    assert.ok(persistedByA < 20_000, `A finished before it could be killed (${persistedByA})`)

    const b = await startWorkerProcess(
      workerEnv({ WORKER_BATCH_SIZE: '500', WORKER_CLAIM_IDLE_MS: '300' }),
    )
    const view = await assertDrained(couponId, wins)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(20_000))
    assert.match(b.output(), /reclaimed wins left pending by another worker/)
    assert.ok(held > 0)

    b.signal('SIGTERM')
    assert.deepEqual(await b.exited, { code: 0, signal: null }, 'graceful stop')
  })

  it('two, then three workers at once: every fresh win persisted exactly once', async () => {
    assert.ok(t)
    const first = await createCoupon(t.app, { totalQuantity: null })
    const firstWins = await win(first, users('two-', 0, 6000))
    const pair = await Promise.all([
      startWorkerProcess(workerEnv({ WORKER_BATCH_SIZE: '100' })),
      startWorkerProcess(workerEnv({ WORKER_BATCH_SIZE: '100' })),
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
      [1, 2, 3].map(() => startWorkerProcess(workerEnv({ WORKER_BATCH_SIZE: '100' }))),
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
    assert.ok(t && redis)
    const couponId = await createCoupon(t.app, { totalQuantity: null })
    const k = keys.coupon(couponId)
    const wins = await win(couponId, users('p', 0, 500))
    const now = String(Date.now())
    // Not a win at all, a bad rank, a win the gate never granted, and one the gate
    // holds but the database refuses (a user id longer than the column).
    const tooLong = 'L'.repeat(80)
    await redis.xadd(k.stream, '*', 'x', 'y')
    await redis.xadd(k.stream, '*', 'u', 'bad-rank', 'r', 'first', 't', now)
    await redis.xadd(k.stream, '*', 'u', 'ghost', 'r', '999999', 't', now)
    await redis.hset(k.users, tooLong, `501:${now}`)
    await redis.xadd(k.stream, '*', 'u', tooLong, 'r', '501', 't', now)
    for (const [userId, rank] of await win(couponId, users('p', 500, 1000))) wins.set(userId, rank)

    const worker = await startWorkerProcess(
      workerEnv({ WORKER_BATCH_SIZE: '100', WORKER_MAX_ATTEMPTS: '3' }),
    )
    await assertDrained(couponId, wins)

    const dead = (await redis.xrange(k.dead, '-', '+')) as [string, string[]][]
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
