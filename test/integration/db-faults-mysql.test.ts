/**
 * Database faults on MySQL/MariaDB answered as what they are (embedded mode, a
 * test database of its own): a table full (ER_RECORD_FILE_FULL, 1114; see
 * test/helpers/disk-faults.ts for why not a full filesystem), a statement timeout
 * (max_statement_time, 1969), a query killed by an operator (KILL QUERY, 1317)
 * and a connection killed (KILL CONNECTION). Every write route answers 503 with
 * Retry-After while the fault lasts, never 500; readiness names the database
 * while writes are refused for want of room; afterwards every win is a row and
 * the invariants hold.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import mysql from 'mysql2/promise'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import { createDatabaseUrl, dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { mysqlTableFull } from '../helpers/disk-faults.js'
import {
  assertUnavailable,
  checkout,
  issueWithKey,
  type RouteAnswer,
  readiness,
  recovered,
} from '../helpers/fault-routes.js'
import { assertInvariants } from '../helpers/invariants.js'
import { waitFor } from '../helpers/storm.js'

describe('database faults on MySQL/MariaDB (embedded mode)', {
  skip: await skipUnlessDialect('mysql'),
}, () => {
  let url = ''
  let t: TestApp
  before(async () => {
    url = await createDatabaseUrl('mysql')
    t = await startApp({
      databaseUrl: url,
      env: { DB_STATEMENT_TIMEOUT_MS: '1000', DB_LOCK_TIMEOUT_MS: '20000' },
    })
  })
  after(async () => {
    await t?.close()
    if (url) await dropDatabaseUrl(url)
  })

  /** A coupon with `spender` already won, and what its 201 said. */
  const couponWithWinner = async (spender: string) => {
    const couponId = await createCoupon(t.app, { totalQuantity: 100 })
    const won = await issueWithKey(t, couponId, spender, spender)
    assert.equal(won.status, 201)
    return { couponId, rank: won.rank as number }
  }

  /** The retried issue and checkout pass; the rows hold both wins. */
  const settles = async (couponId: number, spender: string, rank: number, user: string) => {
    await recovered(t)
    const retried = await issueWithKey(t, couponId, user, `key-${user}`)
    assert.equal(retried.status, 201)
    assert.equal((await checkout(t, couponId, spender)).status, 200)
    await assertInvariants(
      url,
      couponId,
      new Map([
        [spender, rank],
        [user, retried.rank],
      ]),
    )
  }

  it('table full (1114): 503 with Retry-After, readiness names the database', async () => {
    const { couponId, rank } = await couponWithWinner('tf-spender')
    const full = await mysqlTableFull(url)
    try {
      const answers = [
        await issueWithKey(t, couponId, 'tf-user', 'key-tf-user'),
        await checkout(t, couponId, 'tf-spender'),
      ]
      assertUnavailable(answers, 'a full table')
      assert.equal((await readiness(t)).status, 503, 'readiness names the database')
    } finally {
      await full.free()
    }
    await settles(couponId, 'tf-spender', rank, 'tf-user')
  })

  /**
   * While an outside session holds coupon_issues locked, the service's writes
   * wait; `cut(ids)` ends them (the ids of the service's waiting sessions), and
   * each route must then answer 503 with Retry-After.
   */
  const whileLocked = async (
    what: string,
    cut: (admin: mysql.Connection, ids: number[]) => Promise<void>,
  ) => {
    const spender = `${what}-spender`
    const user = `${what}-user`
    const { couponId, rank } = await couponWithWinner(spender)
    const admin = await mysql.createConnection(url)
    const locker = await mysql.createConnection(url)
    let answers: RouteAnswer[]
    try {
      await locker.query('lock tables coupon_issues write')
      const pending = Promise.all([
        issueWithKey(t, couponId, user, `key-${user}`),
        checkout(t, couponId, spender),
      ])
      const name = new URL(url).pathname.slice(1)
      const waiting = await waitFor('the service’s statements to wait for the lock', async () => {
        const [rows] = (await admin.query(
          `select id from information_schema.processlist
           where db = ? and state like '%lock%' and id <> connection_id()`,
          [name],
        )) as unknown as [{ id: number }[]]
        return rows.length >= 2 ? rows.map((r) => r.id) : null
      })
      await cut(admin, waiting)
      answers = await pending
    } finally {
      await locker.query('unlock tables')
      await locker.end()
      await admin.end()
    }
    assertUnavailable(answers, what)
    await settles(couponId, spender, rank, user)
  }

  it('a statement timeout (1969): 503 with Retry-After, then written', async () => {
    // max_statement_time (DB_STATEMENT_TIMEOUT_MS) ends the wait by itself.
    await whileLocked('timeout', async () => {})
  })

  it('a query killed by an operator (1317): 503 with Retry-After, then written', async () => {
    await t.close()
    t = await startApp({
      databaseUrl: url,
      env: { DB_STATEMENT_TIMEOUT_MS: '20000', DB_LOCK_TIMEOUT_MS: '20000' },
    })
    await whileLocked('killed', async (admin, ids) => {
      for (const id of ids) await admin.query(`kill query ${id}`)
    })
  })

  it('a connection killed mid-statement: 503 with Retry-After, then written', async () => {
    await whileLocked('lost', async (admin, ids) => {
      for (const id of ids) await admin.query(`kill connection ${id}`)
    })
  })
})
