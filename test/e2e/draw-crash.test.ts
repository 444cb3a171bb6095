/**
 * Embedded mode: `kill -9` mid-entries loses no entry answered 202 (each is
 * written before its answer), and `kill -9` of the process while it draws is
 * replaced by a restart that draws again and records the documented shuffle's
 * winners, once, every one persisted with ranks 1..n.
 */
import assert from 'node:assert/strict'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import { openDatabase, sqlitePath } from '../../src/db/database.js'
import { findDraw, insertEntries } from '../../src/db/draws-repo.js'
import { pseudonymOf } from '../../src/draw/shuffle.js'
import { verifyDraw } from '../../src/draw/verify.js'
import { ADMIN_TOKEN, admin, createCoupon, iso } from '../helpers/app.js'
import { servedDraw } from '../helpers/draws.js'
import { assertInvariants } from '../helpers/invariants.js'
import { serversOnOneDatabase } from '../helpers/processes.js'
import { httpPool, oneTo, sortedRanks, storm, users } from '../helpers/storm.js'

const QUANTITY = 300
const BULK = 200_000

describe('kill -9 of an embedded process mid-entries and mid-draw', () => {
  const servers = serversOnOneDatabase()
  const env = { LOG_LEVEL: 'info' }

  it('loses no entry, and the restarted process draws the same shuffle once', {
    timeout: 240_000,
  }, async () => {
    const first = await servers.start({ adminToken: ADMIN_TOKEN, env })
    const now = Date.now()
    const couponId = await createCoupon(first, {
      totalQuantity: QUANTITY,
      issueStart: iso(now - 1000),
      drawAt: iso(now + 600_000),
      issueEnd: iso(now + 3_600_000),
    })
    const pool = httpPool(first.url, 100)
    const entered = new Set<string>()
    const unanswered = new Set<string>()
    let answered = 0
    await storm(pool, couponId, users('e-', 0, 3000), {
      onReply: (r) => {
        if (r.status === 202) entered.add(r.userId)
        if (r.status === null) unanswered.add(r.userId)
        if (++answered === 800) first.signal('SIGKILL')
      },
    })
    await pool.close()
    await first.exited
    assert.ok(entered.size >= 800 && entered.size < 3000, `${entered.size} entered`)

    // Many more entrants, written as the service writes them, so the draw takes
    // long enough to be killed in the middle.
    const database = openDatabase(servers.databaseUrl, 'sqlite', { poolSize: 1 })
    const seed = (await findDraw(database.db, couponId))?.seed
    assert.ok(seed)
    const bulk = users('bulk-', 0, BULK)
    await database.db.transaction().execute(async (trx) => {
      const entrants = bulk.map((u) => ({ pseudonym: pseudonymOf(seed, u), userId: u }))
      await insertEntries(trx, couponId, entrants)
    })

    const second = await servers.start({ adminToken: ADMIN_TOKEN, env })
    const moved = await fetch(`${second.url}/v1/coupons/${couponId}`, {
      method: 'PATCH',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ drawAt: iso(Date.now() + 1500) }),
    })
    assert.equal(moved.status, 200)
    // The draw of 200,000 entrants takes a few hundred milliseconds, which a
    // loaded machine can spend before the kill lands. Holding SQLite's write
    // lock lets the process read and shuffle but never record the draw, so the
    // kill falls mid-draw however slow the machine is.
    const writer = new DatabaseSync(sqlitePath(servers.databaseUrl))
    writer.exec('begin immediate')
    try {
      await second.waitForOutput(new RegExp(`"msg":"drawing coupon ${couponId}"`), 60_000)
      second.signal('SIGKILL')
      await second.exited
    } finally {
      writer.exec('rollback')
      writer.close()
    }
    const midDraw = await findDraw(database.db, couponId)
    await database.close()
    assert.equal(midDraw?.drawn, null, 'killed before the draw was recorded')

    const third = await servers.start({ adminToken: ADMIN_TOKEN, env })
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await fetch(`${third.url}${path}`, { headers })
      return { status: res.status, text: await res.text() }
    }
    const served = await servedDraw(get, couponId, 120_000)
    assert.ok(verifyDraw({ record: served.record, entrantList: served.entrantList }).ok)
    const ids = (await get(`/v1/coupons/${couponId}/draw/entrants?as=userIds`, admin)).text
      .slice(0, -1)
      .split('\n')
    const listed = new Set(ids)
    for (const u of entered) assert.ok(listed.has(u), `${u} was answered 202`)
    for (const u of listed)
      if (u.startsWith('e-') && !entered.has(u)) assert.ok(unanswered.has(u), u)
    assert.equal(served.record.entrants, listed.size)

    const byPseudonym = new Map(served.entrants.map((p, i) => [p, ids[i] as string]))
    const winners = new Map(
      served.record.winners.map((p, i) => [byPseudonym.get(p) as string, i + 1]),
    )
    const view = await assertInvariants(servers.databaseUrl, couponId, winners)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(QUANTITY))
    assert.deepEqual(view.ranks, winners)
    const drawn = third
      .output()
      .split('\n')
      .filter((l) => l.includes(`"msg":"coupon ${couponId} drawn:`))
    assert.equal(drawn.length, 1)
    assert.ok(!second.output().includes(`"msg":"coupon ${couponId} drawn:`))
  })
})
