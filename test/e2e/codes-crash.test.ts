/**
 * `kill -9` of the server in the middle of a storm on a coupon with partner
 * codes, then a restart on the same database (and Redis), in either mode: every
 * win answered 201 before the crash still reads the code its 201 carried (code
 * number rank) once persisted; the restarted server hands out the remaining
 * codes, each once, and no win past the last code.
 *   embedded    a win is a row before its 201; ranks granted but never written
 *               are handed out again after the restart, with their codes
 *   Redis mode  the first server runs no worker: the wins are QUEUED in the
 *               stream when it dies; the restarted server's worker persists them
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ADMIN_TOKEN, admin, createCoupon, service } from '../helpers/app.js'
import { DIALECTS } from '../helpers/databases.js'
import { embedded, redisMode } from '../helpers/modes.js'
import { serversOfTest } from '../helpers/processes.js'
import {
  checkRows,
  httpPool,
  type IssueReply,
  oneTo,
  sortedRanks,
  storm,
  users,
  waitDrained,
} from '../helpers/storm.js'

const QUANTITY = 500
const CODES = 300
const KILL_AFTER_WINS = 80

const MODES = [...DIALECTS.map(embedded), redisMode('postgres')]

const codeNumber = (n: number) => `CRASH-${String(n).padStart(4, '0')}`

async function upload(url: string, couponId: number, codes: string[]) {
  const res = await fetch(`${url}/v1/coupons/${couponId}/codes`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({ codes }),
  })
  assert.equal(res.status, 200, await res.text())
}

async function statusOf(url: string, couponId: number, userId: string) {
  const res = await fetch(`${url}/v1/coupons/${couponId}/issues/${userId}`, { headers: service })
  assert.equal(res.status, 200, `${userId}: ${res.status}`)
  return (await res.json()) as { rank: number; code: string | null; state: string }
}

/** userId → [rank, code] of every 201, each with code number rank. */
function codedWins(replies: readonly IssueReply[]): Map<string, [number, string]> {
  const wins = new Map<string, [number, string]>()
  for (const r of replies) {
    if (r.status !== 201) continue
    const { rank, code } = r.body as { rank: number; code: string }
    assert.equal(code, codeNumber(rank), `${r.userId}: code number rank`)
    wins.set(r.userId, [rank, code])
  }
  return wins
}

for (const mode of MODES) {
  describe(`kill -9 during a storm on a coupon with codes (${mode.name})`, {
    skip: await mode.skip(),
  }, () => {
    const suite = mode.suite()

    it('every winner answered before the crash keeps its code; no code twice after', {
      timeout: 180_000,
    }, async (tc) => {
      const start = serversOfTest(tc, {
        databaseUrl: suite.databaseUrl,
        adminToken: ADMIN_TOKEN,
        env: suite.processEnv,
      })
      const first = await start(mode.mode === 'redis' ? ['--no-worker'] : [])
      const couponId = await createCoupon(first, { totalQuantity: QUANTITY })
      await upload(
        first.url,
        couponId,
        Array.from({ length: CODES }, (_, i) => codeNumber(i + 1)),
      )

      const p1 = httpPool(first.url, 64)
      let won = 0
      const before = await storm(p1, couponId, users('k', 0, 600), {
        onReply: (r) => {
          if (r.status === 201 && ++won === KILL_AFTER_WINS) first.signal('SIGKILL')
        },
      })
      await p1.destroy()
      assert.equal((await first.exited).signal, 'SIGKILL')
      assert.ok(
        before.some((r) => r.status === null),
        'the kill cut the storm short',
      )
      const answered = codedWins(before)
      assert.ok(answered.size >= KILL_AFTER_WINS)

      const second = await start()
      const p2 = httpPool(second.url, 64)
      try {
        // The rest of the codes go to new users; then SOLD_OUT, the codes being the limit.
        const after = await storm(p2, couponId, users('r', 0, 600))
        const later = codedWins(after)
        for (const r of after) assert.ok(r.status === 201 || r.code === 'SOLD_OUT', r.code ?? '')
        const stats = await waitDrained(p2, couponId, 60_000)
        assert.equal(stats.limit, CODES)
        assert.equal(stats.won, CODES)
        const view = await checkRows(suite.db, couponId)
        assert.equal(view.rows, CODES)
        assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(CODES))

        // Every 201 before the crash: its row, rank and code, as it was told.
        for (const [userId, [rank, code]] of answered) {
          assert.equal(view.ranks.get(userId), rank, `${userId}'s row`)
          const status = await statusOf(second.url, couponId, userId)
          assert.deepEqual([status.rank, status.code, status.state], [rank, code, 'ISSUED'])
        }
        // No code twice, across both servers' answers.
        const codes = [...answered.values(), ...later.values()].map(([, code]) => code)
        assert.equal(new Set(codes).size, codes.length)
        for (const [userId, [rank]] of later) assert.equal(view.ranks.get(userId), rank)
      } finally {
        await p2.close()
      }
    })
  })
}
