/**
 * Redis drops every client connection in the middle of a storm (`CLIENT KILL TYPE
 * normal`, on a redis-server of the test's own, several times). ioredis sends the
 * commands that were in flight again once it has reconnected, so an issue.lua
 * call that had already run runs a second time. Each storm user sends exactly one
 * request: none may be told ALREADY_ISSUED (it would be its own win, refused),
 * and every 201 must be a row with the rank it was told.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { createCoupon } from '../helpers/app.js'
import {
  type RedisSuiteOptions,
  redisSuite,
  type Service,
  skipUnlessRedisSuite,
} from '../helpers/redis-suite.js'
import { continuousStorm, tally, waitFor, winsOf } from '../helpers/storm.js'

const SUITE: RedisSuiteOptions = { ownRedis: {} }
const KILLS = 12

describe('Redis drops every connection mid-storm (the in-flight calls are sent again)', {
  skip: await skipUnlessRedisSuite(SUITE),
}, () => {
  const suite = redisSuite(SUITE)
  let s: Service

  before(async () => {
    s = await suite.start({ connections: 64 })
  })

  it('a call run twice answers the same win twice: nobody is told ALREADY_ISSUED for their own win', async (tc) => {
    const couponId = await createCoupon(s.app, { totalQuantity: null })
    const storm = continuousStorm(s.pool, couponId, 'k', 64)
    await waitFor('the storm to win', async () => winsOf(storm.replies).size >= 500)
    const ownId = Number(await suite.redis.client('ID'))
    /** the service's connections (every normal client but the test's own) */
    const serviceClients = async () =>
      String(await suite.redis.call('CLIENT', 'LIST', 'TYPE', 'normal'))
        .split('\n')
        .filter((line) => line.startsWith('id=') && !line.startsWith(`id=${ownId} `)).length
    let killed = 0
    for (let i = 0; i < KILLS; i++) {
      // The test's own connection is spared (SKIPME yes is the default).
      killed += Number(await suite.redis.client('KILL', 'TYPE', 'normal'))
      const at = storm.replies.length
      await waitFor(
        'the service to reconnect and the storm to go on',
        async () => storm.replies.length > at + 50 && (await serviceClients()) > 0,
      )
    }
    const wonBefore = winsOf(storm.replies).size
    await waitFor('wins after the last kill', () => winsOf(storm.replies).size > wonBefore + 200)
    const replies = await storm.stop()
    tc.diagnostic(`${killed} connections killed; ${JSON.stringify(tally(replies))}`)
    assert.ok(killed >= KILLS, 'connections were killed')
    const refusedOwnWin = replies.filter((r) => r.code === 'ALREADY_ISSUED')
    assert.deepEqual(
      refusedOwnWin.map((r) => r.userId),
      [],
      'users whose only request was answered ALREADY_ISSUED',
    )
    const won = winsOf(replies)
    const k = suite.keys.coupon(couponId)
    const dead = await suite.redis.xrange(k.dead, '-', '+')
    assert.deepEqual(dead.slice(0, 3), [], 'nothing dead-lettered')
    const view = await suite.assertSettled(s.pool, couponId, won, 60_000)
    assert.equal(view.rows, won.size + 0, 'every 201 is a row, and the rows are the 201s')
  })
})
