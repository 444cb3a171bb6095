/**
 * `kill -9` in the middle of a storm, then a restart on the same database: no
 * answered win is lost, nothing is oversold or duplicated, and the restarted gate
 * knows every winner and hands out exactly the ranks that are left.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { serversOnOneDatabase } from '../helpers/processes.js'
import {
  assertWinsPersisted,
  checkRowsAt,
  getStats,
  httpPool,
  type IssueRowsView,
  oneTo,
  soldOutStats,
  sortedRanks,
  storm,
  tally,
  users,
  winsOf,
} from '../helpers/storm.js'

const QUANTITY = 3000
const FIRST_WAVE = 6000
const KILL_AFTER_WINS = 1000

/** The rows hold every answered win with its rank, and no more than the quantity. */
async function rowsHolding(
  databaseUrl: string,
  couponId: number,
  wins: Map<string, number>,
): Promise<IssueRowsView> {
  const view = await checkRowsAt(databaseUrl, couponId)
  assert.ok(view.rows <= QUANTITY, `no oversell: ${view.rows} rows`)
  assertWinsPersisted(wins, view)
  return view
}

describe('kill -9 during a storm', () => {
  const servers = serversOnOneDatabase()

  it('loses no answered win and finishes the sale with ranks exactly 1..totalQuantity', {
    timeout: 120_000,
  }, async () => {
    const first = await servers.start({ adminToken: ADMIN_TOKEN })
    const couponId = await createCoupon(first, { title: 'crash', totalQuantity: QUANTITY })

    // Wave 1: distinct users; the process is killed once enough wins were answered.
    const p1 = httpPool(first.url, 300)
    let wonSoFar = 0
    const wave1 = await storm(p1, couponId, users('k', 1, FIRST_WAVE + 1), {
      onReply(r) {
        if (r.status === 201 && ++wonSoFar === KILL_AFTER_WINS) first.signal('SIGKILL')
      },
    })
    await p1.destroy()
    assert.equal((await first.exited).signal, 'SIGKILL')
    const answered = wave1.filter((r) => r.status !== null)
    assert.ok(
      answered.length < wave1.length,
      'the kill cut the storm short (some requests got no answer)',
    )
    for (const r of answered) assert.equal(r.status, 201, `unexpected ${r.status} ${r.code}`)
    const wins1 = winsOf(answered)
    assert.ok(wins1.size >= KILL_AFTER_WINS)
    const afterCrash = await rowsHolding(servers.databaseUrl, couponId, wins1)

    // Restart on the same database: the gate is rebuilt from the rows.
    const second = await servers.start({ adminToken: ADMIN_TOKEN })
    const p2 = httpPool(second.url, 300)
    try {
      const repeats = await storm(p2, couponId, [...wins1.keys()])
      assert.deepEqual(
        tally(repeats),
        { '409 ALREADY_ISSUED': wins1.size },
        'the restarted gate knows every answered winner',
      )

      // Wave 2: everyone who got no win, plus new users, until the coupon is sold out.
      const wave2Users = [
        ...wave1.filter((r) => r.status !== 201).map((r) => r.userId),
        ...users('n', 1, QUANTITY + 1),
      ]
      const wave2 = await storm(p2, couponId, wave2Users)
      for (const r of wave2) {
        assert.ok(
          r.status === 201 || r.code === 'SOLD_OUT' || r.code === 'ALREADY_ISSUED',
          `unexpected ${r.status} ${r.code} ${r.error}`,
        )
      }
      const wins2 = winsOf(wave2)
      // Users whose win was committed but never answered are the ALREADY_ISSUED ones.
      const silentWins = afterCrash.rows - wins1.size
      assert.equal(wave2.filter((r) => r.code === 'ALREADY_ISSUED').length, silentWins)
      assert.equal(wins2.size, QUANTITY - afterCrash.rows)

      const final = await rowsHolding(servers.databaseUrl, couponId, new Map([...wins1, ...wins2]))
      assert.deepEqual(sortedRanks(final.ranks.values()), oneTo(QUANTITY))
      assert.deepEqual(await getStats(p2, couponId), soldOutStats(couponId, QUANTITY))
    } finally {
      await p2.close()
    }
  })
})
