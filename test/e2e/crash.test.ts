/**
 * `kill -9` in the middle of a storm, then a restart on the same database: no
 * answered win is lost, nothing is oversold or duplicated, and the restarted gate
 * knows every winner and hands out exactly the ranks that are left.
 */
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { openDatabase } from '../../src/db/database.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import {
  type IssueAnswer,
  type IssueRowLite,
  issueAll,
  issueRows,
  oneTo,
  pool,
  sortedNumbers,
  tally,
} from '../helpers/embedded-storm.js'
import { type ServerProcess, startServer } from '../helpers/server-process.js'

const ADMIN_TOKEN = 'e2e-admin-token-crash'
const QUANTITY = 3000
const FIRST_WAVE = 6000
const KILL_AFTER_WINS = 1000

const users = (prefix: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`)

async function rowsOf(databaseUrl: string, couponId: number): Promise<IssueRowLite[]> {
  const database = openDatabase(databaseUrl, 'sqlite')
  try {
    return await issueRows(database.db, couponId)
  } finally {
    await database.close()
  }
}

function assertRowsSound(rows: IssueRowLite[]) {
  assert.ok(rows.length <= QUANTITY, `no oversell: ${rows.length} rows`)
  const dupUsers = [...tally(rows.map((r) => r.userId))].filter(([, n]) => n > 1)
  assert.deepEqual(dupUsers, [], 'no user has two rows')
  const dupRanks = [...tally(rows.map((r) => r.rank))].filter(([, n]) => n > 1)
  assert.deepEqual(dupRanks, [], 'ranks are unique')
}

function assertWinsPersisted(wins: IssueAnswer[], rows: IssueRowLite[]) {
  const rankOf = new Map(rows.map((r) => [r.userId, r.rank]))
  const lost = wins.filter((w) => rankOf.get(w.userId) !== w.rank)
  assert.deepEqual(
    lost.map((w) => w.userId),
    [],
    'every win answered 201 is a row with the same rank',
  )
}

describe('kill -9 during a storm', () => {
  let databaseUrl = ''
  const servers: ServerProcess[] = []

  after(async () => {
    for (const s of servers) await s.stop()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('loses no answered win and finishes the sale with ranks exactly 1..totalQuantity', {
    timeout: 120_000,
  }, async () => {
    databaseUrl = await createDatabaseUrl('sqlite')
    const first = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN })
    servers.push(first)
    const created = await fetch(`${first.url}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'crash',
        totalQuantity: QUANTITY,
        discountAmount: 1000,
        minAvailableAmount: 0,
        issueStart: new Date(Date.now() - 60_000).toISOString(),
        issueEnd: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    })
    assert.equal(created.status, 201)
    const couponId = ((await created.json()) as { id: number }).id

    // Wave 1: distinct users; the process is killed once enough wins were answered.
    const p1 = pool(first.url, 300)
    let wonSoFar = 0
    const wave1 = await issueAll(p1, couponId, users('k', 1, FIRST_WAVE), (a) => {
      if (a.status === 201 && ++wonSoFar === KILL_AFTER_WINS) first.child.kill('SIGKILL')
    })
    await p1.destroy()
    assert.equal((await first.exited).signal, 'SIGKILL')
    const wins1 = wave1.filter((a) => a.status === 201)
    assert.ok(wins1.length >= KILL_AFTER_WINS)
    assert.ok(
      wave1.some((a) => a.status === null),
      'the kill cut the storm short (some requests got no answer)',
    )
    for (const a of wave1) {
      if (a.status !== null) assert.equal(a.status, 201, `unexpected ${a.status} ${a.code}`)
    }

    const afterCrash = await rowsOf(databaseUrl, couponId)
    assertRowsSound(afterCrash)
    assertWinsPersisted(wins1, afterCrash)

    // Restart on the same database: the gate is rebuilt from the rows.
    const second = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN })
    servers.push(second)
    const p2 = pool(second.url, 300)
    try {
      const repeats = await issueAll(
        p2,
        couponId,
        wins1.map((w) => w.userId),
      )
      assert.deepEqual(
        [...tally(repeats.map((a) => `${a.status} ${a.code}`))],
        [['409 ALREADY_ISSUED', wins1.length]],
        'the restarted gate knows every answered winner',
      )

      // Wave 2: everyone who got no win, plus new users, until the coupon is sold out.
      const wave2Users = [
        ...wave1.filter((a) => a.status !== 201).map((a) => a.userId),
        ...users('n', 1, QUANTITY),
      ]
      const wave2 = await issueAll(p2, couponId, wave2Users)
      for (const a of wave2) {
        assert.ok(
          a.status === 201 || a.code === 'SOLD_OUT' || a.code === 'ALREADY_ISSUED',
          `unexpected ${a.status} ${a.code} ${a.error}`,
        )
      }
      const wins2 = wave2.filter((a) => a.status === 201)
      // Users whose win was committed but never answered are the ALREADY_ISSUED ones.
      const silentWins = afterCrash.length - wins1.length
      assert.equal(wave2.filter((a) => a.code === 'ALREADY_ISSUED').length, silentWins)
      assert.equal(wins2.length, QUANTITY - afterCrash.length)

      const final = await rowsOf(databaseUrl, couponId)
      assertRowsSound(final)
      assertWinsPersisted([...wins1, ...wins2], final)
      assert.deepEqual(sortedNumbers(final.map((r) => r.rank)), oneTo(QUANTITY))

      const stats = await fetch(`${second.url}/v1/coupons/${couponId}/stats`)
      assert.deepEqual(await stats.json(), {
        couponId,
        totalQuantity: QUANTITY,
        won: QUANTITY,
        persisted: QUANTITY,
        queued: 0,
        remaining: 0,
      })
    } finally {
      await p2.close()
    }
  })
})
