/**
 * The opening draw on a Redis Cluster (three masters started by the test),
 * with two API services on one PostgreSQL database, both running the draw, and
 * a stream worker: coupons whose `{c<id>}` slots lie on every master take
 * entries through both services (every user twice, once through each), then
 * each coupon is drawn exactly once (one record, one `coupon.draw_done`
 * event), its winners are the first n of the documented shuffle, ranked 1..n
 * and persisted, and its losers are told NOT_DRAWN.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Pool } from 'undici'
import { drawWinners, pseudonymOf, seedFromHex } from '../../src/draw/shuffle.js'
import { verifyDraw } from '../../src/draw/verify.js'
import { createCoupon, iso, patchCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { servedDraw } from '../helpers/draws.js'
import { startCluster, type TestCluster } from '../helpers/redis-cluster.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { skipUnless } from '../helpers/services.js'
import {
  checkRows,
  httpPool,
  issueOnce,
  oneTo,
  sortedRanks,
  storm,
  tally,
  users,
  waitDrained,
} from '../helpers/storm.js'

const PREFIX = 'fc:'
const QUANTITY = 40
const ENTRANTS = 400
/** drawAt at creation: well after the entries; then moved closer by PATCH */
const ENTRY_MS = 120_000

const skip = skipUnlessRedisServer('to start a Redis Cluster') || (await skipUnless('postgres'))

describe('the opening draw on a Redis Cluster, two services drawing', { skip }, () => {
  let cluster: TestCluster
  let databaseUrl = ''
  const apps: TestApp[] = []
  const pools: Pool[] = []

  async function get(path: string) {
    const res = await (pools[0] as Pool).request({ method: 'GET', path })
    return { status: res.statusCode, text: await res.body.text() }
  }

  before(async () => {
    cluster = await startCluster()
    databaseUrl = await createDatabaseUrl('postgres')
    const env = { REDIS_CLUSTER_NODES: cluster.spec, REDIS_KEY_PREFIX: PREFIX }
    for (let i = 0; i < 2; i++) {
      const app = await startApp({ env, databaseUrl })
      apps.push(app)
      pools.push(httpPool(await app.listen(), 100))
    }
    await apps[0]?.startWorker()
  })

  after(async () => {
    for (const p of pools) await p.close()
    for (const a of apps) await a.close()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
    await cluster?.stop()
  })

  it('entries on every master; each coupon drawn once, the shuffle’s winners ranked 1..n', {
    timeout: 120_000,
  }, async () => {
    const main = apps[0] as TestApp
    const slotOf = (id: number) => cluster.slotOf(`{c${id}}`)
    const drawAt = Date.now() + ENTRY_MS
    // Coupons until their slots cover the three masters.
    const couponOn = new Map<number, number>()
    for (let i = 0; couponOn.size < 3; i++) {
      assert.ok(i < 40, 'coupons on every master')
      const id = await createCoupon(main.app, {
        totalQuantity: QUANTITY,
        issueStart: iso(Date.now() - 1000),
        drawAt: iso(drawAt),
        issueEnd: iso(drawAt + 600_000),
      })
      const master = cluster.masterOf(slotOf(id))
      if (!couponOn.has(master)) couponOn.set(master, id)
    }
    const coupons = [...couponOn.values()]

    // Every user enters each coupon twice, once through each service, at once.
    const everyone = users('entrant-', 0, ENTRANTS)
    const answers = await Promise.all(
      coupons.flatMap((id) => pools.map((pool) => storm(pool, id, everyone))),
    )
    assert.deepEqual(
      tally(answers.flat(), (a) => String(a.status)),
      { '202': ENTRANTS * 2 * coupons.length },
    )

    const soon = Date.now() + 1000
    for (const id of coupons) {
      const res = await patchCoupon(main.app, id, { drawAt: iso(soon) })
      assert.equal(res.statusCode, 200, res.body)
    }

    for (const id of coupons) {
      const { record, entrants, entrantList } = await servedDraw(get, id, 60_000)
      const seed = seedFromHex(record.seed)
      const byPseudonym = new Map(everyone.map((u) => [pseudonymOf(seed, u), u]))
      assert.equal(record.entrants, ENTRANTS)
      assert.deepEqual(entrants, [...byPseudonym.keys()].sort())
      assert.deepEqual(record.winners, drawWinners(seed, entrants, QUANTITY).winners)
      assert.ok(verifyDraw({ record, entrantList }).ok)

      const winners = new Map(record.winners.map((p, i) => [byPseudonym.get(p) as string, i + 1]))
      await waitDrained(pools[0] as Pool, id)
      const view = await checkRows(main.container.database.db, id)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(QUANTITY))
      assert.deepEqual(view.ranks, winners)
      const loser = everyone.find((u) => !winners.has(u)) as string
      for (const pool of pools) {
        const again = await issueOnce(pool, id, loser)
        assert.deepEqual([again.status, again.code], [404, 'NOT_DRAWN'])
      }
      // Drawn once: one record, one event, however many services looked.
      const events = await main.container.database.db
        .selectFrom('events')
        .select('id')
        .where('type', '=', 'coupon.draw_done')
        .where('coupon_id', '=', id)
        .execute()
      assert.equal(events.length, 1)
    }
  })
})
