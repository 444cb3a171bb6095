/**
 * Embedded mode (SQLite, and PostgreSQL as a server dialect): a storm of issue
 * requests, each with an Idempotency-Key of its own, is cut by `kill -9`; the
 * service restarts on the same database and every request is sent again with its
 * key. A request answered 201 before the kill hears 201 with the same rank again
 * (the key was kept beside its row and read back into the gate at start); one that
 * got no answer either won then (its row is there: the same 201 now) or wins now.
 * Another key, or none, is ALREADY_ISSUED; the invariants hold in the database.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import type { Dialect } from '../../src/config.js'
import { listWins } from '../../src/db/issues-repo.js'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { createTestDatabase, skipUnlessDialect, type TestDatabase } from '../helpers/databases.js'
import { assertInvariants } from '../helpers/invariants.js'
import { keyedStorm, keyOf } from '../helpers/keyed-storm.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { oneTo, sortedRanks, tally, users, winsOf } from '../helpers/storm.js'

const USERS = 1500
const QUANTITY = 2000
const KILL_AFTER_WINS = 300

for (const dialect of ['sqlite', 'postgres'] satisfies Dialect[]) {
  describe(`Idempotency-Key across kill -9 and a restart (embedded, ${dialect})`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    const servers: ServerProcess[] = []
    let db: TestDatabase | undefined
    after(async () => {
      await stopAll(servers)
      await db?.drop()
    })
    const start = async () => {
      db ??= await createTestDatabase(dialect)
      const server = await startServer({ databaseUrl: db.url, adminToken: ADMIN_TOKEN })
      servers.push(server)
      return server
    }

    it('answers a key that won before the kill 201 with the same rank', {
      timeout: 180_000,
    }, async () => {
      const first = await start()
      const couponId = await createCoupon(first, { totalQuantity: QUANTITY })
      const everyone = users('i', 0, USERS)
      let won = 0
      const before = await keyedStorm(first.url, couponId, everyone, keyOf, (r) => {
        if (r.status === 201 && ++won === KILL_AFTER_WINS) first.signal('SIGKILL')
      })
      assert.equal((await first.exited).signal, 'SIGKILL')
      const answered = before.filter((r) => r.status !== null)
      for (const r of answered) assert.equal(r.status, 201, `${r.status} ${r.code}`)
      assert.ok(answered.length < USERS, 'the kill cut the storm short')
      const wonBefore = winsOf(answered)
      assert.ok(wonBefore.size >= KILL_AFTER_WINS)

      const second = await start()
      const again = await keyedStorm(second.url, couponId, everyone, keyOf)
      assert.deepEqual(tally(again), { '201': USERS }, 'every keyed request wins, again or now')
      const wonAgain = winsOf(again)
      for (const [user, rank] of wonBefore)
        assert.equal(wonAgain.get(user), rank, `${user}: the same rank as before the kill`)

      // Another attempt (another key, or none) of a winner is refused as before.
      const others = await keyedStorm(second.url, couponId, everyone.slice(0, 200), (u) =>
        u.endsWith('0') ? null : `other-${u}`,
      )
      assert.deepEqual(tally(others), { '409 ALREADY_ISSUED': 200 })

      const view = await assertInvariants(db?.url ?? '', couponId, wonAgain)
      assert.equal(view.rows, USERS)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(USERS))
      const kept = await listWins(db?.database.db ?? assert.fail('no database'), couponId)
      assert.deepEqual(
        kept.filter((w) => w.requestId !== keyOf(w.userId)).map((w) => w.userId),
        [],
        'every row keeps the key of the request that won it',
      )
    })
  })
}
