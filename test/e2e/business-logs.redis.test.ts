/**
 * One JSON line per business event, never one per request, and with two API
 * processes still once: a coupon created and changed, its window opened, sold
 * out (with the time it took), closed; a gate rebuild; a dead letter.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon, type Deployment, deployment } from '../helpers/cockpit.js'
import { redisClient } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'
import { httpPool, storm, waitFor } from '../helpers/storm.js'

const skip = (await skipUnless('redis')) || (await skipUnless('postgres'))

type Line = Record<string, unknown>

function events(output: string, couponId: number): Line[] {
  const lines: Line[] = []
  for (const text of output.split('\n')) {
    if (!text.startsWith('{')) continue
    try {
      const line = JSON.parse(text) as Line
      if (line.couponId === couponId && typeof line.event === 'string') lines.push(line)
    } catch {}
  }
  return lines
}

const named = (lines: Line[], event: string) => lines.filter((l) => l.event === event)

async function waitForEvent(output: () => string, couponId: number, event: string) {
  try {
    await waitFor(event, async () => named(events(output(), couponId), event).length > 0)
  } catch (err) {
    throw new Error(`${String(err)}; output:\n${output().slice(-4000)}`)
  }
}

describe('business events in the logs', { skip }, () => {
  const cluster = deployment({ apiProcesses: 2, workers: 1 })
  let d: Deployment

  before(async () => {
    d = await cluster.start({ LOG_LEVEL: 'info' })
  })

  it('logs a coupon created, changed, opened, sold out and closed once each', async () => {
    const start = new Date(Date.now() + 3000)
    const id = await createCoupon(d.server.url, {
      totalQuantity: 30,
      issueStart: start,
      issueEnd: new Date(start.getTime() + 60_000),
    })
    const patched = await fetch(`${d.server.url}/v1/coupons/${id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ totalQuantity: 40 }),
    })
    assert.equal(patched.status, 200)
    await waitForEvent(() => d.server.output(), id, 'coupon.window_opened')
    const pool = httpPool(d.server.url, 50)
    try {
      const replies = await storm(
        pool,
        id,
        Array.from({ length: 400 }, (_, i) => `u${i}`),
      )
      assert.equal(replies.filter((r) => r.status === 201).length, 40)
    } finally {
      await pool.close()
    }
    await waitForEvent(() => d.server.output(), id, 'coupon.sold_out')
    const stop = await fetch(`${d.server.url}/v1/coupons/${id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ issueEnd: new Date().toISOString() }),
    })
    assert.equal(stop.status, 200)
    await waitForEvent(() => d.server.output(), id, 'coupon.window_closed')
    await new Promise((r) => setTimeout(r, 1500)) // time for a duplicate to show
    const lines = events(d.server.output(), id)
    assert.equal(named(lines, 'coupon.created').length, 1)
    assert.equal(named(lines, 'coupon.changed').length, 2)
    assert.equal(named(lines, 'coupon.window_opened').length, 1)
    const [soldOut] = named(lines, 'coupon.sold_out')
    assert.equal(named(lines, 'coupon.sold_out').length, 1)
    assert.equal(soldOut?.won, 40)
    assert.ok(typeof soldOut?.sellOutMs === 'number' && soldOut.sellOutMs >= 0)
    const [closed] = named(lines, 'coupon.window_closed')
    assert.equal(named(lines, 'coupon.window_closed').length, 1)
    assert.equal(closed?.won, 40)
    // Nothing per request: 400 requests, a handful of lines.
    assert.ok(events(d.server.output(), id).length < 10)
  })

  it('logs a gate rebuild and a dead letter once each', async () => {
    const everyOutput = () => [d.server, ...d.workers].map((p) => p.output()).join('\n')
    const id = await createCoupon(d.server.url, { totalQuantity: 10 })
    const redis = redisClient()
    try {
      const pool = httpPool(d.server.url, 20)
      try {
        assert.equal((await storm(pool, id, ['first']))[0]?.status, 201)
        // Redis loses the coupon: the next requests rebuild it, in one process.
        await redis.del(`${d.prefix}{c${id}}:meta`)
        await storm(
          pool,
          id,
          Array.from({ length: 40 }, (_, i) => `r${i}`),
        )
      } finally {
        await pool.close()
      }
      // The API processes rebuild it on the next request, or the worker does,
      // when it verifies the first win against the gate after the loss.
      await waitForEvent(everyOutput, id, 'gate.rebuilt')
      // An entry the worker cannot read goes to the dead letters.
      await redis.xadd(`${d.prefix}{c${id}}:stream`, '*', 'junk', '1')
      const worker = d.workers[0]
      assert.ok(worker)
      await waitForEvent(() => worker.output(), id, 'win.dead_lettered')
    } finally {
      redis.disconnect()
    }
    await new Promise((r) => setTimeout(r, 1000)) // time for a duplicate to show
    assert.equal(named(events(everyOutput(), id), 'gate.rebuilt').length, 1)
    assert.equal(named(events(d.workers[0]?.output() ?? '', id), 'win.dead_lettered').length, 1)
  })
})
