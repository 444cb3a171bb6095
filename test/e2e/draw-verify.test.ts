/**
 * `firstcome verify-draw` against the real service: a coupon with a draw, users
 * entering (202), the draw at drawAt, then the command over the service's own
 * public answers, for a winner, a loser and a stranger.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { admin, startApp } from '../helpers/app.js'
import { waitFor } from '../helpers/storm.js'
import { verifyDrawCommand } from '../helpers/verify-draw.js'

const ENTRANTS = 40
const QUANTITY = 5

describe('verify-draw against the service', () => {
  it('finds the published draw to be the shuffle, and tells each user their fate', async () => {
    const t = await startApp()
    try {
      const url = await t.listen()
      const now = Date.now()
      const created = await fetch(`${url}/v1/coupons`, {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({
          title: 'draw',
          totalQuantity: QUANTITY,
          discountAmount: 1000,
          minAvailableAmount: 0,
          issueStart: new Date(now).toISOString(),
          drawAt: new Date(now + 3_000).toISOString(),
          issueEnd: new Date(now + 60_000).toISOString(),
        }),
      })
      assert.equal(created.status, 201)
      const coupon = (await created.json()) as { id: number; drawCommitment: string }
      const users = Array.from({ length: ENTRANTS }, (_, i) => `entrant-${i}`)
      for (const userId of users) {
        const res = await fetch(`${url}/v1/coupons/${coupon.id}/issues`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ userId }),
        })
        assert.equal(res.status, 202)
      }
      const record = await waitFor('the draw', async () => {
        const res = await fetch(`${url}/v1/coupons/${coupon.id}/draw`)
        return res.status === 200 ? ((await res.json()) as { winners: string[] }) : null
      })
      assert.equal(record.winners.length, QUANTITY)

      const fates = await Promise.all(
        users.map(async (userId) => {
          const res = await fetch(`${url}/v1/coupons/${coupon.id}/issues/${userId}`)
          const body = (await res.json()) as { rank?: number; code?: string }
          return { userId, rank: res.status === 200 ? body.rank : null, code: body.code }
        }),
      )
      const winner = fates.find((f) => f.rank === 1)
      const loser = fates.find((f) => f.code === 'NOT_DRAWN')
      assert.ok(winner && loser)
      const run = await verifyDrawCommand(url, coupon.id, [
        '--user',
        winner.userId,
        '--commitment',
        coupon.drawCommitment,
      ])
      assert.equal(run.status, 0, run.output)
      assert.match(run.stdout, new RegExp(`user ${winner.userId}: entered .*, drawn, rank 1\\b`))
      const asLoser = await verifyDrawCommand(url, coupon.id, ['--user', loser.userId])
      assert.match(asLoser.stdout, new RegExp(`user ${loser.userId}: entered .*, not drawn`))
      const stranger = await verifyDrawCommand(url, coupon.id, ['--user', 'never-entered'])
      assert.match(stranger.stdout, /not among the entrants/)
    } finally {
      await t.close()
    }
  })
})
