/**
 * The draw with several processes (Redis mode): two API processes (`serve
 * --no-worker`) and two workers, each running the draw runner, race for every
 * draw; exactly one draws it. A `kill -9` of an API process mid-entries loses no
 * entry answered 202, and a `kill -9` of the process drawing, after it has put
 * the winners in the gate and before its record, is replaced by another that
 * gives the same winners with the same ranks, each once.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Pool } from 'undici'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { openDatabase } from '../../src/db/database.js'
import { findDraw } from '../../src/db/draws-repo.js'
import { pseudonymOf } from '../../src/draw/shuffle.js'
import { verifyDraw } from '../../src/draw/verify.js'
import { ADMIN_TOKEN, admin, createCoupon, iso } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { servedDraw } from '../helpers/draws.js'
import { assertInvariants } from '../helpers/invariants.js'
import {
  type ServerProcess,
  type ServiceProcess,
  startServer,
  startWorkerProcess,
  stopAll,
} from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import { issueOnce, storm, tally, twiceShuffled, users, waitDrained } from '../helpers/storm.js'
import { waitFor } from '../helpers/wait.js'

const LEASE_MS = 3000

async function get(pool: Pool, path: string, headers: Record<string, string> = {}) {
  const res = await pool.request({ method: 'GET', path, headers })
  return { status: res.statusCode, text: await res.body.text() }
}

async function moveDrawAt(pool: Pool, couponId: number, at: number) {
  const res = await pool.request({
    method: 'PATCH',
    path: `/v1/coupons/${couponId}`,
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ drawAt: iso(at) }),
  })
  assert.equal(res.statusCode, 200, await res.body.text())
  await res.body.dump()
}

/** userId → rank of the draw's winners, through the admin's user-id list. */
async function winnersOf(pool: Pool, couponId: number) {
  const served = await servedDraw((path) => get(pool, path), couponId, 120_000)
  const plain = await get(pool, `/v1/coupons/${couponId}/draw/entrants?as=userIds`, admin)
  const ids = plain.text.slice(0, -1).split('\n')
  const byPseudonym = new Map(served.entrants.map((p, i) => [p, ids[i] as string]))
  const winners = new Map(
    served.record.winners.map((p, i) => [byPseudonym.get(p) as string, i + 1]),
  )
  return { served, winners, userIds: ids }
}

const drawnLines = (procs: ServiceProcess[], couponId: number) =>
  procs
    .flatMap((p) => p.output().split('\n'))
    .filter((l) => l.includes(`"msg":"coupon ${couponId} drawn:`))

describe('the draw with two API processes and two workers (Redis mode)', {
  skip: (await skipUnless('redis')) || (await skipUnless('postgres')),
}, () => {
  const prefix = uniquePrefix()
  let databaseUrl = ''
  const procs: ServiceProcess[] = []
  let a: ServerProcess
  let b: ServerProcess
  let poolA: Pool
  let poolB: Pool
  const env = {
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'info',
    DRAW_LEASE_MS: String(LEASE_MS),
  }

  before(async () => {
    databaseUrl = await createDatabaseUrl('postgres')
    a = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN, noWorker: true, env })
    b = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN, noWorker: true, env })
    procs.push(a, b)
    for (let i = 0; i < 2; i++)
      procs.push(await startWorkerProcess({ ...env, DATABASE_URL: databaseUrl }))
    poolA = new Pool(a.url, { connections: 100 })
    poolB = new Pool(b.url, { connections: 100 })
  })
  after(async () => {
    await poolA?.close()
    await poolB?.close()
    await stopAll(procs)
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('entries through both, the draw run exactly once, every winner persisted', {
    timeout: 120_000,
  }, async () => {
    const now = Date.now()
    const couponId = await createCoupon(a, {
      totalQuantity: 200,
      issueStart: iso(now - 1000),
      drawAt: iso(now + 600_000),
      issueEnd: iso(now + 3_600_000),
    })
    const everyone = users('both-', 0, 3000)
    const [viaA, viaB] = await Promise.all([
      storm(poolA, couponId, twiceShuffled(everyone.slice(0, 1500))),
      storm(poolB, couponId, twiceShuffled(everyone.slice(1500))),
    ])
    assert.deepEqual(
      tally([...viaA, ...viaB], (r) => String(r.status)),
      { '202': 6000 },
    )
    await moveDrawAt(poolA, couponId, Date.now() + 1000)

    const { served, winners, userIds } = await winnersOf(poolB, couponId)
    assert.deepEqual([...userIds].sort(), [...everyone].sort())
    assert.ok(verifyDraw({ record: served.record, entrantList: served.entrantList }).ok)
    assert.equal(winners.size, 200)
    await waitDrained(poolA, couponId)
    const view = await assertInvariants(databaseUrl, couponId, winners)
    assert.deepEqual(view.ranks, winners)
    // Four processes raced for it: one drew.
    assert.equal(drawnLines(procs, couponId).length, 1)
  })

  it('kill -9 mid-entries loses no 202; kill -9 mid-draw is replaced with the same winners', {
    timeout: 240_000,
  }, async () => {
    const now = Date.now()
    const couponId = await createCoupon(a, {
      totalQuantity: 500,
      issueStart: iso(now - 1000),
      drawAt: iso(now + 600_000),
      issueEnd: iso(now + 3_600_000),
    })
    // Entries through B, killed mid-storm: every 202 it gave is in the draw.
    let answered = 0
    const entered = new Set<string>()
    const unanswered = new Set<string>()
    const viaB = storm(poolB, couponId, users('storm-', 0, 3000), {
      onReply: (r) => {
        if (r.status === 202) entered.add(r.userId)
        if (r.status === null) unanswered.add(r.userId)
        if (++answered === 500) b.signal('SIGKILL')
      },
    })
    await viaB
    await b.exited
    assert.ok(entered.size >= 500 && entered.size < 3000, `${entered.size} entered`)
    await poolB.close()
    const killed = b
    b = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN, noWorker: true, env })
    procs.push(b)
    poolB = new Pool(b.url, { connections: 100 })

    // Many more entrants, written straight into the gate's entries (as enter.lua
    // writes them), so the draw takes long enough to be killed in the middle.
    const database = openDatabase(databaseUrl, 'postgres', { poolSize: 1 })
    const seed = (await findDraw(database.db, couponId))?.seed
    await database.close()
    assert.ok(seed)
    const redis = redisClient()
    const k = new RedisKeys(prefix).coupon(couponId)
    const bulk = users('bulk-', 0, 200_000)
    for (let i = 0; i < bulk.length; i += 10_000) {
      const args: (string | number)[] = []
      for (const u of bulk.slice(i, i + 10_000)) args.push(0, pseudonymOf(seed, u) + u)
      await redis.zadd(k.entries, ...args)
    }

    await moveDrawAt(poolA, couponId, Date.now() + 500)
    const live = procs.filter((p) => p !== killed)
    const drawer = await Promise.any(
      live.map((p) =>
        p.waitForOutput(new RegExp(`"msg":"drawing coupon ${couponId}"`), 60_000).then(() => p),
      ),
    )
    // Killed once the winners are in the gate, before the record is written.
    await waitFor('the winners in the gate', async () => {
      return (await redis.hget(k.draw, 'state')) === 'drawn'
    })
    drawer.signal('SIGKILL')
    await drawer.exited
    const inGate = await redis.hgetall(k.users)
    redis.disconnect()
    assert.equal(Object.keys(inGate).length, 500)
    const survivor = drawer === a ? poolB : poolA
    assert.equal((await get(survivor, `/v1/coupons/${couponId}/draw`)).status, 404, 'mid-draw')
    const { served, winners, userIds } = await winnersOf(survivor, couponId)
    assert.ok(verifyDraw({ record: served.record, entrantList: served.entrantList }).ok)
    const listed = new Set(userIds)
    for (const u of entered) assert.ok(listed.has(u), `${u} was answered 202`)
    // Beyond those, only requests in flight when B died (their answer never came).
    for (const u of listed)
      if (u.startsWith('storm-') && !entered.has(u)) assert.ok(unanswered.has(u), u)
    // The same winners, with the same ranks, as the killed process put in the gate.
    const gateRanks = new Map(
      Object.entries(inGate).map(([u, v]) => [u, Number(v.slice(0, v.indexOf(':')))]),
    )
    assert.deepEqual(winners, gateRanks)
    // Another process finished it, once.
    const finishers = drawnLines(
      live.filter((p) => p !== drawer),
      couponId,
    )
    assert.equal(finishers.length, 1)
    await waitDrained(survivor, couponId, 60_000)
    const view = await assertInvariants(databaseUrl, couponId, winners)
    assert.deepEqual(view.ranks, winners)
    const loser = userIds.find((u) => !winners.has(u)) as string
    const refused = await issueOnce(survivor, couponId, loser)
    assert.equal(refused.code, 'NOT_DRAWN')
  })
})
