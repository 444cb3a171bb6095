/**
 * A client's retry with the same Idempotency-Key after a 503 gets the original
 * answer, in either mode (on PostgreSQL). The backend that decides is taken away
 * for a while, so the requests are answered 503 while their wins are decided:
 *   embedded    the database turns read-only (a test database of its own): the
 *               group commit fails, the wins stay granted and are retried
 *   Redis mode  Redis (a redis-server of the test's own) is frozen: the calls
 *               time out with 503 while they wait on the socket, and run once
 *               it is thawed
 * Meanwhile a retry hears 503 too, and no win is a row. Then each retry with its
 * key hears 201 with the rank its win holds — also once the coupon is sold out
 * and the local cache knows it — never a refusal; without the key, or with
 * another, a repeat is refused as always. Every win is a row once.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { findIssue } from '../../src/db/issues-repo.js'
import { createCoupon } from '../helpers/app.js'
import { resetReadOnly, setReadOnly } from '../helpers/db-faults.js'
import { embedded, type ModeName, type ModeSuite, redisMode } from '../helpers/modes.js'
import type { Service } from '../helpers/redis-suite.js'
import {
  assertWinsPersisted,
  checkRows,
  type IssueReply,
  issueOnce,
  users,
  waitDrained,
} from '../helpers/storm.js'
import { waitFor } from '../helpers/wait.js'

const USERS = users('i', 0, 40)

interface Fault {
  /** what is taken away */
  what: string
  /** the service's environment for it */
  env: Record<string, string>
  begin(suite: ModeSuite): Promise<void>
  end(suite: ModeSuite): Promise<void>
  /** the rank the backend holds for a user's win */
  heldRank(suite: ModeSuite, couponId: number, userId: string): Promise<number | null>
}

function ownRedisPid(suite: ModeSuite): number {
  const pid = suite.redis?.server.pid()
  assert.ok(pid, 'the suite runs a redis-server of its own')
  return pid
}

const FAULTS = {
  embedded: {
    what: 'the database read-only',
    env: {},
    begin: (suite) => setReadOnly(suite.databaseUrl),
    end: (suite) => resetReadOnly(suite.databaseUrl),
    // In this mode a 201 means the win is committed: its rank is the row's.
    heldRank: async (suite, couponId, userId) =>
      (await findIssue(suite.db, couponId, userId))?.rank ?? null,
  },
  redis: {
    what: 'Redis frozen',
    env: { REDIS_COMMAND_TIMEOUT_MS: '300' },
    begin: async (suite) => {
      process.kill(ownRedisPid(suite), 'SIGSTOP')
    },
    end: async (suite) => {
      process.kill(ownRedisPid(suite), 'SIGCONT')
    },
    heldRank: async (suite, couponId, userId) => {
      const redis = suite.redis
      assert.ok(redis)
      const held = await redis.redis.hget(redis.keys.coupon(couponId).users, userId)
      return held === null ? null : Number(held.split(':')[0])
    },
  },
} satisfies Record<ModeName, Fault>

const MODES = [embedded('postgres'), redisMode('postgres', { ownRedis: {} })]

for (const mode of MODES) {
  const fault: Fault = FAULTS[mode.mode]
  describe(`Idempotency-Key (${mode.name}, ${fault.what} for a while)`, {
    skip: await mode.skip(),
  }, () => {
    const suite = mode.suite()

    const withKey = (s: Service, couponId: number, userId: string, key = `key-${userId}`) =>
      issueOnce(s.pool, couponId, userId, { headers: { 'idempotency-key': key } })

    it('a retry after a 503 hears the original win, with its rank', async (tc) => {
      const s = await suite.start({ env: fault.env }, tc)
      const couponId = await createCoupon(s.app, { totalQuantity: USERS.length + 2 })
      assert.equal((await issueOnce(s.pool, couponId, 'first')).status, 201)

      await fault.begin(suite)
      try {
        const first = await Promise.all(USERS.map((u) => withKey(s, couponId, u)))
        for (const r of first) assert.equal(r.status, 503, `${r.userId}: ${r.status} ${r.code}`)
        const early = await Promise.all(USERS.map((u) => withKey(s, couponId, u)))
        for (const r of early)
          assert.equal(r.status, 503, `${r.userId}: no 201 before the win holds`)
        for (const u of USERS)
          assert.equal(await findIssue(suite.db, couponId, u), null, `${u}: a row meanwhile`)
      } finally {
        await fault.end(suite)
      }

      // Each retry is answered 503 until the win holds again, then 201: never a refusal.
      const retries = await Promise.all(
        USERS.map((u) =>
          waitFor(`a retry of ${u} answered`, async () => {
            const r = await withKey(s, couponId, u)
            return r.status === 503 ? null : r
          }),
        ),
      )
      for (const r of retries) {
        assert.equal(r.status, 201, `${r.userId}: ${r.status} ${r.code}`)
        const held = await fault.heldRank(suite, couponId, r.userId)
        assert.equal(r.rank, held, `${r.userId} hears the rank it holds`)
      }
      assert.deepEqual(
        retries.map((r) => r.rank).sort((a, b) => (a ?? 0) - (b ?? 0)),
        USERS.map((_, i) => i + 2),
      )

      // Without the key, or with another, a repeat is what it always was.
      const [user] = USERS as [string]
      assert.equal((await issueOnce(s.pool, couponId, user)).code, 'ALREADY_ISSUED')
      assert.equal((await withKey(s, couponId, user, 'another-key')).code, 'ALREADY_ISSUED')

      // Sold out now (the last winner makes it so): the same retries still hear their win.
      const last = await issueOnce(s.pool, couponId, 'last')
      assert.equal(last.status, 201)
      assert.equal((await issueOnce(s.pool, couponId, 'late')).code, 'SOLD_OUT')
      await waitFor('the cache to know it is sold out', async () => {
        return (await issueOnce(s.pool, couponId, 'late-2')).code === 'SOLD_OUT'
      })
      const again: IssueReply[] = await Promise.all(USERS.map((u) => withKey(s, couponId, u)))
      assert.deepEqual(
        again.map((r) => [r.status, r.rank]),
        retries.map((r) => [201, r.rank]),
      )
      assert.equal((await issueOnce(s.pool, couponId, user)).status, 409)

      const stats = await waitDrained(s.pool, couponId)
      assert.equal(stats.persisted, USERS.length + 2)
      const view = await checkRows(suite.db, couponId)
      assert.equal(view.rows, USERS.length + 2)
      const wins = [...retries, last].map((r): [string, number] => [r.userId, r.rank ?? 0])
      assertWinsPersisted(new Map(wins), view)
    })
  })
}
