/**
 * `kill -9` of the server in the middle of a storm of spends, then a restart on
 * the same database: every spend answered 200 is used by its order in the
 * database (the commit comes before the answer), and the restarted server
 * answers every spend made before the crash as its own retry.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { serversOnOneDatabase } from '../helpers/processes.js'
import { httpPool, storm, users, winsOf } from '../helpers/storm.js'
import { spendStorm, usedRows } from '../helpers/use.js'

const WINNERS = 1500
const KILL_AFTER_SPENDS = 300

describe('kill -9 during a storm of spends (embedded, SQLite)', () => {
  const servers = serversOnOneDatabase()

  it('loses no spend answered 200', { timeout: 180_000 }, async () => {
    const first = await servers.start({ adminToken: ADMIN_TOKEN })
    const couponId = await createCoupon(first, {
      title: 'crash-spend',
      totalQuantity: WINNERS,
      minAvailableAmount: 0,
    })
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

    const used = await usedRows(servers.databaseUrl, couponId)
    for (const r of answered) assert.equal(used.get(r.userId), `ord-${r.userId}`, r.userId)
    for (const [userId, orderId] of used) assert.equal(orderId, `ord-${userId}`)

    // Restarted: a spend that committed (answered or not) is its order's retry.
    const second = await servers.start({ adminToken: ADMIN_TOKEN })
    const p2 = httpPool(second.url, 100)
    try {
      const again = await spendStorm(p2, couponId, winners, () => {})
      for (const r of again) assert.equal(r.status, 200, r.userId)
      assert.equal((await usedRows(servers.databaseUrl, couponId)).size, WINNERS)
    } finally {
      await p2.close()
    }
  })
})
