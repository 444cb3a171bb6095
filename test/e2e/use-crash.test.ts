/**
 * `kill -9` of the server in the middle of a storm of spends, then a restart on
 * the same database, in either mode: every spend answered 200 is used by its
 * order in the database (the commit comes before the answer), nothing is counted
 * twice, and the restarted server answers every spend made before the crash as
 * its own retry.
 *   embedded (SQLite)        every win is a row before its 201
 *   Redis mode (PostgreSQL)  the wins are QUEUED (the first server runs no
 *                            worker): every spend persists its win itself; the
 *                            restarted server's worker persists the rest without
 *                            counting a spent win twice, and dead-letters none
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { embedded, type ModeName, redisMode } from '../helpers/modes.js'
import { serversOfTest } from '../helpers/processes.js'
import {
  checkRows,
  httpPool,
  soldOutStats,
  storm,
  users,
  waitDrained,
  winsOf,
} from '../helpers/storm.js'
import { spendStorm, usedRows } from '../helpers/use.js'

interface Crash {
  winners: number
  /** the server is killed at this many spends answered 200 */
  killAfterSpends: number
  /** the first server's arguments */
  firstArgs: string[]
  /** whether the wins are still only in the gate when they are spent */
  queued: boolean
}

const CRASHES = {
  embedded: { winners: 1500, killAfterSpends: 300, firstArgs: [], queued: false },
  redis: { winners: 600, killAfterSpends: 100, firstArgs: ['--no-worker'], queued: true },
} satisfies Record<ModeName, Crash>

const MODES = [embedded('sqlite'), redisMode('postgres')]

for (const mode of MODES) {
  const crash: Crash = CRASHES[mode.mode]
  describe(`kill -9 during a storm of spends (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()

    it('loses no spend answered 200 and counts every win once', {
      timeout: 180_000,
    }, async (tc) => {
      const start = serversOfTest(tc, {
        databaseUrl: suite.databaseUrl,
        adminToken: ADMIN_TOKEN,
        env: suite.processEnv,
      })
      const { winners: WINNERS, killAfterSpends: KILL_AFTER_SPENDS } = crash

      const first = await start(crash.firstArgs)
      const couponId = await createCoupon(first, { totalQuantity: WINNERS, minAvailableAmount: 0 })
      const p1 = httpPool(first.url, 100)
      const winners = [...winsOf(await storm(p1, couponId, users('w', 0, WINNERS))).keys()]
      assert.equal(winners.length, WINNERS)

      let ok = 0
      const replies = await spendStorm(p1, couponId, winners, () => {
        if (++ok === KILL_AFTER_SPENDS) first.signal('SIGKILL')
      })
      await p1.destroy()
      assert.equal((await first.exited).signal, 'SIGKILL')
      const answered = replies.filter((r) => r.status === 200)
      assert.ok(answered.length >= KILL_AFTER_SPENDS)
      assert.ok(
        replies.some((r) => r.status === null),
        'the kill cut the storm short',
      )
      for (const r of replies) assert.ok(r.status === 200 || r.status === null, `${r.status}`)

      const used = await usedRows(suite.databaseUrl, couponId)
      for (const r of answered) assert.equal(used.get(r.userId), `ord-${r.userId}`, r.userId)
      for (const [userId, orderId] of used) assert.equal(orderId, `ord-${userId}`)
      // Each win counted once (checkRows: issued_quantity = rows): queued wins are
      // rows only where a spend made them one; otherwise every win is a row.
      const rowsNow = (await checkRows(suite.db, couponId)).rows
      assert.equal(rowsNow, crash.queued ? used.size : WINNERS)

      // Restarted (with its worker in Redis mode): a spend that committed
      // (answered or not) is its order's retry, and every win is persisted once.
      const second = await start()
      const p2 = httpPool(second.url, 100)
      try {
        assert.deepEqual(await waitDrained(p2, couponId, 60_000), soldOutStats(couponId, WINNERS))
        assert.equal((await checkRows(suite.db, couponId)).rows, WINNERS)
        const stillUsed = await usedRows(suite.databaseUrl, couponId)
        for (const r of answered) assert.equal(stillUsed.get(r.userId), `ord-${r.userId}`)
        if (suite.redis) {
          const k = suite.redis.keys.coupon(couponId)
          assert.equal(await suite.redis.redis.xlen(k.dead), 0, 'nothing dead-lettered')
        }

        const again = await spendStorm(p2, couponId, winners, () => {})
        for (const r of again) assert.equal(r.status, 200, r.userId)
        assert.equal((await usedRows(suite.databaseUrl, couponId)).size, WINNERS)
        assert.equal((await checkRows(suite.db, couponId)).rows, WINNERS)
      } finally {
        await p2.close()
      }
    })
  })
}
