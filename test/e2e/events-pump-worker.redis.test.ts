/**
 * Events kept out of the API processes, as deploy/ runs them: `firstcome serve
 * --no-worker` with EVENTS_PUMP=false beside a `firstcome worker` (Redis mode).
 * - The API never takes the dispatcher's lease: with no worker yet, wins are
 *   answered and nobody holds it.
 * - The worker takes it: it persists the wins, sequences their events,
 *   delivers them to a webhook (each once, in order, signed) and wakes the
 *   API's long poll through Redis.
 */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it } from 'node:test'
import { LEASE_NAME } from '../../src/events/event-pump.js'
import type { FeedEvent } from '../../src/events/feed.js'
import { ADMIN_TOKEN, admin, createCoupon } from '../helpers/app.js'
import { serversOfTest } from '../helpers/processes.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { waitFor } from '../helpers/wait.js'

const WINS = 150
const EVENTS_ENV = {
  EVENTS_TICK_MS: '20',
  WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
  WEBHOOK_RETRY_BASE_MS: '50',
}

describe('events pumped by a worker, not by the API (EVENTS_PUMP=false)', {
  skip: await skipUnlessRedisSuite({}),
}, () => {
  const suite = redisSuite()

  it('the API never takes the lease; the worker delivers and wakes the long poll', {
    timeout: 120_000,
  }, async (tc) => {
    let secret = ''
    const batches: { events: FeedEvent[]; verified: boolean }[] = []
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8')
        const [t, v1] = String(req.headers['firstcome-signature']).split(',')
        const hex = createHmac('sha256', secret)
          .update(`${t?.slice(2)}.${raw}`)
          .digest('hex')
        batches.push({
          events: (JSON.parse(raw) as { events: FeedEvent[] }).events,
          verified: v1 === `v1=${hex}`,
        })
        res.writeHead(200).end()
      })
    })
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
    tc.after(() => new Promise((r) => receiver.close(r)))
    const { port } = receiver.address() as AddressInfo

    const serve = serversOfTest(tc, {
      databaseUrl: suite.databaseUrl,
      adminToken: ADMIN_TOKEN,
      noWorker: true,
      env: { ...suite.processEnv, ...EVENTS_ENV, EVENTS_PUMP: 'false' },
    })
    const api = await serve()
    const hook = await fetch(`${api.url}/v1/webhooks`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${port}/in`, events: ['coupon.issued'] }),
    })
    assert.equal(hook.status, 201)
    secret = ((await hook.json()) as { secret: string }).secret
    const couponId = await createCoupon(api, { totalQuantity: WINS })
    // Asked before any event exists: only the worker's notice can answer it early.
    const asked = Date.now()
    const poll = fetch(`${api.url}/v1/events?after=0&wait=30`, { headers: admin })
    for (let i = 0; i < WINS; i += 25) {
      await Promise.all(
        Array.from({ length: 25 }, async (_, j) => {
          const res = await fetch(`${api.url}/v1/coupons/${couponId}/issues`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ userId: `w${i + j}` }),
          })
          assert.equal(res.status, 201)
          await res.body?.cancel()
        }),
      )
    }
    // Long after a pump in the API would have taken it (at its start, before
    // it listened): nobody holds the lease.
    const leases = suite.db.selectFrom('event_leases').selectAll().where('name', '=', LEASE_NAME)
    assert.equal(await leases.executeTakeFirst(), undefined, 'the API took no lease')

    const worker = await suite.startWorkerProcess(EVENTS_ENV)
    const woken = (await (await poll).json()) as { items: FeedEvent[] }
    assert.equal(woken.items[0]?.type, 'coupon.issued')
    assert.ok(Date.now() - asked < 25_000, 'woken by the worker, not by the end of the wait')
    const delivered = () => new Set(batches.flatMap((b) => b.events.map((e) => e.data.userId)))
    await waitFor(`${WINS} events delivered`, () => delivered().size === WINS, 60_000)
    const all = batches.flatMap((b) => b.events)
    for (let i = 1; i < all.length; i++) {
      assert.ok(Number(all[i - 1]?.id) < Number(all[i]?.id), `in order at ${i}`)
    }
    assert.equal(all.length, WINS, 'each once')
    assert.ok(batches.every((b) => b.verified && b.events.length <= 100))
    const lease = await leases.executeTakeFirstOrThrow()
    assert.match(lease.holder, new RegExp(`^${worker.pid}-`), 'the worker holds the lease')
  })
})
