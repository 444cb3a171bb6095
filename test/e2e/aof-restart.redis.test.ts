/**
 * Redis with `appendonly yes, appendfsync always` is killed -9 in the middle of a
 * storm and restarted on the same directory and port. Every acknowledged write
 * was on disk, so nothing answered 201 may be lost: at the end every winner has
 * its row with the rank it was told, the rows are exactly Redis's winners, and
 * the ranks have no gap. Meanwhile the service answers 503 + Retry-After within
 * a bound, and resumes by itself.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Database, openDatabase } from '../../src/db/database.js'
import { RedisKeys } from '../../src/redis/keys.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import {
  type RedisServer,
  skipUnlessRedisServer,
  startRedisServer,
} from '../helpers/redis-server.js'
import {
  assertWinsPersisted,
  checkRows,
  continuousStorm,
  httpPool,
  oneTo,
  sortedRanks,
  tally,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'

const skip = skipUnlessRedisServer() || (await skipUnlessDialect('postgres'))
const BOUND_MS = 3000

describe('Redis with AOF always, killed -9 mid-storm and restarted', { skip }, () => {
  const prefix = 'fc:'
  let server: RedisServer | undefined
  let databaseUrl = ''
  let t: TestApp | undefined
  let worker: { stop(): Promise<void> } | undefined
  let check: Database | undefined

  before(async () => {
    server = await startRedisServer({ aofAlways: true })
    databaseUrl = await createDatabaseUrl('postgres')
    check = openDatabase(databaseUrl, 'postgres', { poolSize: 2 })
    t = await startApp({
      env: { REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix },
      databaseUrl,
    })
    assert.ok(t.container.startWorker)
    worker = await t.container.startWorker()
    await t.listen()
  })

  after(async () => {
    await worker?.stop()
    await t?.close()
    await server?.stop()
    await check?.close()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('loses no acknowledged win, answers 503 within a bound meanwhile, and resumes by itself', async (tc) => {
    assert.ok(t && server && check)
    const pool = httpPool(t.url, 64)
    tc.after(() => pool.close())
    const couponId = await createCoupon(t.app, { totalQuantity: 1_000_000 })
    let next = 0
    const s = continuousStorm(pool, couponId, () => `a${next++}`, 32)

    await waitFor('1,000 wins before the crash', async () => winsOf(s.replies).size >= 1000)
    await server.kill()
    const killedAt = s.replies.length
    await sleep(1000)
    await server.start() // replays the AOF
    const restartedAt = s.replies.length
    await waitFor(
      'wins again after the restart',
      async () => s.replies.slice(restartedAt).filter((r) => r.status === 201).length >= 1000,
      15_000,
    )
    const replies = await s.stop()

    const counts = tally(replies)
    tc.diagnostic(JSON.stringify(counts))
    const outage = replies.slice(killedAt, restartedAt)
    assert.ok(
      outage.some((r) => r.status === 503),
      'requests during the outage are answered 503',
    )
    for (const r of replies) {
      assert.ok(r.ms < BOUND_MS, `${r.userId} answered after ${Math.round(r.ms)} ms`)
      if (r.status === 201) continue
      assert.equal(r.status, 503, `${r.userId}: ${r.status} ${r.code}`)
      assert.equal(r.code, 'UNAVAILABLE')
      assert.equal(r.retryAfter, '1')
    }

    const wins = winsOf(replies)
    await waitDrained(pool, couponId, 15_000)
    const view = await checkRows(check.db, couponId)
    assertWinsPersisted(wins, view)
    const redis = server.client()
    const winners = await redis.hlen(new RedisKeys(prefix).coupon(couponId).users)
    assert.equal(view.rows, winners, 'rows = the winners Redis holds')
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(view.rows), 'no rank lost')
    tc.diagnostic(`${wins.size} answered 201; ${view.rows - wins.size} decided but answered 503`)
  })
})
