/**
 * The MySQL/MariaDB counterpart of database-read-only: writes refused for a while
 * in the middle of a storm, with two workers, then allowed again. MySQL has no
 * read-only switch per database (`read_only` is server-wide), so the services
 * connect as a user of the test's own whose write privileges on the two tables
 * are revoked and granted back (table privileges apply to open connections at
 * their next statement). Every write fails meanwhile with an error that is the
 * database's, not any row's (ER_TABLEACCESS_DENIED_ERROR); none may dead-letter.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { Redis } from 'ioredis'
import { sql } from 'kysely'
import mysql from 'mysql2/promise'
import type { Pool } from 'undici'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createTestDatabase, skipUnlessDialect, type TestDatabase } from '../helpers/databases.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { SERVICES, skipUnless } from '../helpers/services.js'
import {
  assertWinsPersisted,
  checkRows,
  httpPool,
  steadyStorm,
  tally,
  waitDrained,
  waitFor,
  winsOf,
} from '../helpers/storm.js'

const OUTAGE_MS = 8000
const WORKER_ENV = {
  WORKER_BATCH_SIZE: '200',
  WORKER_CLAIM_IDLE_MS: '2000',
  WORKER_MAX_ATTEMPTS: '2',
}
const ADMIN = `mysql://root@${SERVICES.mysql.host}:${SERVICES.mysql.port}/`

const skip = (await skipUnless('redis')) || (await skipUnlessDialect('mysql'))

describe('MySQL writes refused for a while during a storm (Redis mode, two workers)', {
  skip,
}, () => {
  const prefix = uniquePrefix()
  const user = `fc_u_${randomBytes(4).toString('hex')}`
  let db: TestDatabase
  let name: string
  let redis: Redis
  const services: { t: TestApp; pool: Pool }[] = []

  async function asRoot(statements: string[]) {
    const conn = await mysql.createConnection(ADMIN)
    try {
      for (const s of statements) await conn.query(s)
    } finally {
      await conn.end()
    }
  }
  const onTables = (what: string) =>
    ['coupons', 'coupon_issues'].map((t) => what.replace('{t}', `\`${name}\`.\`${t}\``))

  before(async () => {
    db = await createTestDatabase('mysql')
    name = new URL(db.url).pathname.slice(1)
    redis = redisClient()
    // Every table the migrations made, granted one by one: a table-level grant
    // is what the fault revokes below (a database-wide one could not be).
    const tables = await sql<{ t: string }>`select table_name as t from information_schema.tables
      where table_schema = ${name}`.execute(db.database.db)
    await asRoot([
      `create user '${user}'@'%' identified by ''`,
      ...tables.rows.map(
        ({ t }) => `grant all privileges on \`${name}\`.\`${t}\` to '${user}'@'%'`,
      ),
    ])
    const url = `mysql://${user}@${SERVICES.mysql.host}:${SERVICES.mysql.port}/${name}`
    for (let i = 0; i < 2; i++) {
      const t = await startApp({
        env: { REDIS_URL, REDIS_KEY_PREFIX: prefix, ...WORKER_ENV },
        databaseUrl: url,
      })
      await t.startWorker()
      services.push({ t, pool: httpPool(await t.listen(), 32) })
    }
  })

  after(async () => {
    for (const { t, pool } of services) {
      await pool.close()
      await t.close()
    }
    if (redis) {
      await deleteKeys(redis, prefix)
      redis.disconnect()
    }
    await asRoot([`drop user if exists '${user}'@'%'`]).catch(() => {})
    await db?.drop()
  })

  it('answers wins meanwhile, persists every one after, dead-letters none', async (tc) => {
    const [a, b] = services as [(typeof services)[0], (typeof services)[0]]
    const couponId = await createCoupon(a.t.app, { totalQuantity: 1_000_000 })
    const k = new RedisKeys(prefix).coupon(couponId)
    const storms = [steadyStorm(a.pool, couponId, 'a', 16), steadyStorm(b.pool, couponId, 'b', 16)]
    const wins = () => storms.reduce((n, s) => n + winsOf(s.replies).size, 0)
    await waitFor('500 wins before the fault', async () => wins() >= 500)
    await asRoot(onTables(`revoke insert, update on {t} from '${user}'@'%'`))
    const before = wins()
    const revokedAt = Date.now()
    let during: number
    try {
      // Refused for OUTAGE_MS by the clock (several of the workers' claim-idle
      // bounds), and until the storm has gone on winning through it.
      await waitFor(
        'the storm to go on winning while writes are refused',
        async () => Date.now() - revokedAt >= OUTAGE_MS && wins() - before > 100,
        OUTAGE_MS + 30_000,
      )
    } finally {
      during = wins() - before
      await asRoot(onTables(`grant insert, update on {t} to '${user}'@'%'`))
    }
    const grantedAt = wins()
    await waitFor('wins after writes are allowed again', () => wins() > grantedAt + 100)
    const replies = (await Promise.all(storms.map((s) => s.stop()))).flat()
    tc.diagnostic(`whole storm: ${JSON.stringify(tally(replies))}; ${during} wins while refused`)
    assert.ok(during > 100, 'the storm went on winning while writes were refused')

    const dead = await redis.xrange(k.dead, '-', '+')
    assert.equal(dead.length, 0, `dead-lettered: ${JSON.stringify(dead.slice(0, 3))}`)
    const won = winsOf(replies)
    await waitDrained(a.pool, couponId, 60_000)
    const view = await checkRows(db.database.db, couponId)
    assertWinsPersisted(won, view)
    assert.equal(view.rows, won.size, 'every 201 is a row, and nothing else is')
    assert.equal(view.rows, await redis.hlen(k.users))
    assert.equal(await redis.xlen(k.dead), 0, 'nothing dead-lettered')
  })
})
