/**
 * A `firstcome worker` process killed (-9) while it holds thousands of read,
 * unpersisted wins: the other worker must take over all of them as soon as the
 * dead one's heartbeat has stopped, not a page every WORKER_CLAIM_IDLE_MS / 2 after
 * they have been idle WORKER_CLAIM_IDLE_MS (30 s, then 1,000 every 15 s: over a
 * minute and a half for 6,000). While the holder lives, its wins stay its own.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { PERSIST_GROUP } from '../../src/coupon-state/keys.js'
import { ALIVE_MS } from '../../src/ops/heartbeats.js'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { assertInvariants } from '../helpers/invariants.js'
import { countIssues } from '../helpers/issue-counts.js'
import { redisSuite, type Service, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { oneTo, sortedRanks, users, waitFor } from '../helpers/storm.js'

const WINS = 6000
/** from the kill to every win a row: the heartbeat's ALIVE_MS and the persisting */
const TAKEOVER_BOUND_MS = ALIVE_MS + 15_000

describe('a worker killed while it holds thousands of wins', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()
  let t: Service

  before(async () => {
    t = await suite.start({ worker: false })
  })

  /** Pending entries per consumer of the persist group. */
  async function pendingBy(couponId: number): Promise<Map<string, number>> {
    const summary = (await suite.redis.xpending(
      suite.keys.coupon(couponId).stream,
      PERSIST_GROUP,
    )) as [number, string | null, string | null, [string, string][] | null]
    return new Map((summary[3] ?? []).map(([name, n]) => [name, Number(n)]))
  }

  it('the other worker persists them all within the heartbeat bound', async (tc) => {
    const couponId = await createCoupon(t.app, { totalQuantity: WINS })
    const wins = await winInProcess(t, couponId, users('k', 0, WINS))
    const rows = () => countIssues(suite.db, couponId)

    // A reads every win in one transaction's worth, then waits (the persist delay)
    // before writing them: it holds all of them, pending on its consumer.
    const a = await suite.startWorkerProcess({
      WORKER_PERSIST_DELAY_MS: '60000',
      WORKER_TX_ROWS: String(WINS),
    })
    const holder = await waitFor('worker A to hold every win', async () => {
      const byConsumer = await pendingBy(couponId)
      return byConsumer.size === 1 && [...byConsumer.values()][0] === WINS
        ? [...byConsumer.keys()][0]
        : null
    })
    // B's idle bound is far off, so what takes the wins over is A's death alone.
    const b = await suite.startWorkerProcess({ WORKER_CLAIM_IDLE_MS: '600000' })

    // A live holder keeps its wins past the heartbeat bound: B takes none early.
    await sleep(ALIVE_MS + 2000)
    assert.deepEqual(await pendingBy(couponId), new Map([[holder, WINS]]))
    assert.equal(await rows(), 0)

    a.signal('SIGKILL')
    await a.exited
    const killedAt = Date.now()
    await waitFor(
      `worker B to persist all ${WINS} wins of the killed worker`,
      async () =>
        (await rows()) === WINS &&
        (await suite.redis.xlen(suite.keys.coupon(couponId).stream)) === 0 &&
        (await suite.pending(couponId)) === 0,
      TAKEOVER_BOUND_MS,
      200,
    )
    tc.diagnostic(`all ${WINS} wins persisted ${Date.now() - killedAt} ms after the kill`)
    assert.match(b.output(), /"event":"wins.reclaimed"[^\n]*"owner"/)
    // Emptied, the dead worker's consumer is dropped from the group.
    await waitFor("the dead worker's consumer to be dropped", async () => {
      const consumers = (await suite.redis.xinfo(
        'CONSUMERS',
        suite.keys.coupon(couponId).stream,
        PERSIST_GROUP,
      )) as string[][]
      return !consumers.some((c) => c[c.indexOf('name') + 1] === holder)
    })

    const view = await assertInvariants(suite.databaseUrl, couponId, wins)
    assert.equal(view.rows, WINS)
    assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(WINS))
    b.signal('SIGTERM')
    assert.deepEqual(await b.exited, { code: 0, signal: null }, b.output().slice(-4000))
  })
})
