/**
 * Spends racing over real sockets, on each dialect (embedded) and in Redis mode
 * with the win still QUEUED (the spends race to persist it too):
 * - 200 different orders for one coupon: exactly one 200, 199 ALREADY_USED;
 * - 200 retries of one order: 200 identical 200s.
 * Then one row, used by the winning order, and issued_quantity exact.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Pool } from 'undici'
import type { Dialect } from '../../src/config.js'
import type { Db } from '../../src/db/database.js'
import { createCoupon, requestIssue, startApp, type TestApp } from '../helpers/app.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { checkRows, httpPool } from '../helpers/storm.js'
import { issueRow, spendOver } from '../helpers/use.js'

const RACERS = 200

interface Under {
  app: FastifyInstance
  pool: Pool
  db: Db
  /** Redis mode without a worker: the wins stay QUEUED until a spend persists them */
  queued: boolean
}

function races(under: () => Under) {
  async function winner(userId: string) {
    const { app } = under()
    const id = await createCoupon(app, { totalQuantity: 5 })
    assert.equal((await requestIssue(app, id, userId)).statusCode, 201)
    return id
  }

  it(`${RACERS} different orders for one coupon: exactly one 200, the rest ALREADY_USED`, {
    timeout: 120_000,
  }, async () => {
    const { pool, db, queued } = under()
    const id = await winner('racer')
    const replies = await Promise.all(
      Array.from({ length: RACERS }, (_, i) => spendOver(pool, id, 'racer', `order-${i}`)),
    )
    const won = replies.filter((r) => r.status === 200)
    assert.equal(won.length, 1, JSON.stringify(replies.filter((r) => r.status !== 409)))
    for (const r of replies) {
      if (r.status !== 200) assert.equal((r.body as { code: string }).code, 'ALREADY_USED')
    }
    const orderId = (won[0]?.body as { orderId?: string } | undefined)?.orderId
    assert.equal((await issueRow(db, id, 'racer'))?.order_id, orderId)
    const view = await checkRows(db, id)
    assert.equal(view.rows, 1, queued ? 'the QUEUED win persisted once' : 'one row')
  })

  it(`${RACERS} retries of one order: ${RACERS} identical 200s`, { timeout: 120_000 }, async () => {
    const { pool, db } = under()
    const id = await winner('retrier')
    const replies = await Promise.all(
      Array.from({ length: RACERS }, () => spendOver(pool, id, 'retrier', 'the-order')),
    )
    for (const r of replies) assert.equal(r.status, 200, JSON.stringify(r.body))
    const first = replies[0]?.body
    for (const r of replies) assert.deepEqual(r.body, first)
    assert.equal((await issueRow(db, id, 'retrier'))?.order_id, 'the-order')
    assert.equal((await checkRows(db, id)).rows, 1)
  })
}

for (const dialect of DIALECTS) {
  describe(`spend races, embedded on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let t: TestApp
    let pool: Pool
    let url = ''
    before(async () => {
      url = await createDatabaseUrl(dialect)
      t = await startApp({ databaseUrl: url })
      pool = httpPool(await t.listen(), 64)
    })
    after(async () => {
      await pool?.close()
      await t?.close()
      if (url) await dropDatabaseUrl(url)
    })
    races(() => ({ app: t.app, pool, db: t.container.database.db, queued: false }))
  })
}

const REDIS_DIALECTS = DIALECTS.filter((d): d is Exclude<Dialect, 'sqlite'> => d !== 'sqlite')
for (const dialect of REDIS_DIALECTS) {
  describe(`spend races on QUEUED wins, Redis mode on ${dialect}`, {
    skip: await skipUnlessRedisSuite({ dialect }),
  }, () => {
    const suite = redisSuite({ dialect })
    let s: Awaited<ReturnType<typeof suite.start>>
    before(async () => {
      s = await suite.start({ worker: false })
    })
    races(() => ({ app: s.app, pool: s.pool, db: suite.db, queued: true }))
  })
}
