/**
 * Webhooks against real receivers (HTTP servers on 127.0.0.1 in the test), on
 * every dialect:
 * - registration: the secret shown once; refusals (not http(s), a host off
 *   WEBHOOK_ALLOWED_HOSTS, an unknown type, no token); delete;
 * - signatures verify as a receiver checks them; batches of at most 100, in
 *   order, each event once;
 * - a receiver answering 500 for a while, then recovering: everything arrives,
 *   at least once, in order;
 * - a receiver that hangs: the time limit holds, another endpoint is not held
 *   back; a redirect is not followed;
 * - past the retry period the endpoint is failing and skipped; re-enabled, it
 *   resumes where it stopped;
 * - two dispatchers on one database: one delivers (each event once).
 */
import assert from 'node:assert/strict'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import type { Pool } from 'undici'
import type { FeedEvent } from '../../src/events/feed.js'
import { admin, createCoupon } from '../helpers/app.js'
import { DIALECTS } from '../helpers/databases.js'
import { embedded } from '../helpers/modes.js'
import { storm, users } from '../helpers/storm.js'
import { waitFor } from '../helpers/wait.js'

interface Delivery {
  events: FeedEvent[]
  verified: boolean
  at: number
}

type Answer = (req: IncomingMessage, res: ServerResponse) => boolean

/**
 * A receiver: checks each POST's signature as docs/events.md says a receiver
 * should, records what it got, and answers as `answer` says (true: it
 * answered; false: 200).
 */
async function startReceiver(secret: () => string, answer: Answer = () => false) {
  const deliveries: Delivery[] = []
  const open = new Set<ServerResponse>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      const header = String(req.headers['firstcome-signature'] ?? '')
      const t = /(?:^|,)t=(\d+)/.exec(header)?.[1] ?? ''
      const v1 = /(?:^|,)v1=([0-9a-f]+)/.exec(header)?.[1] ?? ''
      const expected = createHmac('sha256', secret()).update(`${t}.${raw}`).digest('hex')
      const fresh = Math.abs(Date.now() / 1000 - Number(t)) < 300
      const verified =
        fresh &&
        v1.length === expected.length &&
        timingSafeEqual(Buffer.from(v1), Buffer.from(expected))
      open.add(res)
      res.on('close', () => open.delete(res))
      if (answer(req, res)) return
      deliveries.push({
        events: (JSON.parse(raw) as { events: FeedEvent[] }).events,
        verified,
        at: Date.now(),
      })
      res.writeHead(200).end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    deliveries,
    /** every event received, first sighting order, without repeats */
    events(): FeedEvent[] {
      const seen = new Map<number, FeedEvent>()
      for (const d of deliveries) for (const e of d.events) if (!seen.has(e.id)) seen.set(e.id, e)
      return [...seen.values()]
    },
    async close() {
      for (const res of open) res.destroy()
      await new Promise((r) => server.close(r))
    },
  }
}

type Receiver = Awaited<ReturnType<typeof startReceiver>>

async function register(pool: Pool, body: Record<string, unknown>) {
  const res = await pool.request({
    method: 'POST',
    path: '/v1/webhooks',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

async function getWebhook(pool: Pool, id: unknown) {
  const res = await pool.request({ method: 'GET', path: `/v1/webhooks/${id}`, headers: admin })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> }
}

function assertAscending(events: FeedEvent[]) {
  for (let i = 1; i < events.length; i++) {
    assert.ok(Number(events[i - 1]?.id) < Number(events[i]?.id), `in order at ${i}`)
  }
}

/** Waits until the receiver has `n` distinct issued events of the coupon. */
function waitIssued(r: Receiver, couponId: number, n: number, timeoutMs = 30_000) {
  return waitFor(
    `${n} coupon.issued events of coupon ${couponId}`,
    () =>
      r.events().filter((e) => e.type === 'coupon.issued' && e.data.couponId === couponId).length >=
      n,
    timeoutMs,
  )
}

const ALL = ['coupon.issued', 'coupon.used', 'coupon.use_cancelled', 'coupon.sold_out']

const FAST = {
  EVENTS_TICK_MS: '20',
  WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
  WEBHOOK_RETRY_BASE_MS: '50',
  WEBHOOK_RETRY_MAX_MS: '400',
  WEBHOOK_TIMEOUT_MS: '2000',
}

for (const mode of DIALECTS.map(embedded)) {
  describe(`webhooks (${mode.name})`, { skip: await mode.skip() }, () => {
    const suite = mode.suite()
    const receivers: Receiver[] = []
    after(async () => {
      for (const r of receivers.splice(0)) await r.close()
    })
    const receiver = async (secret: () => string, answer?: Answer) => {
      const r = await startReceiver(secret, answer)
      receivers.push(r)
      return r
    }

    it('registration: the secret once; refusals; delete', async (t) => {
      const s = await suite.start({ env: FAST }, t)
      const list = async () => {
        const res = await s.pool.request({ method: 'GET', path: '/v1/webhooks', headers: admin })
        return ((await res.body.json()) as { items: Record<string, unknown>[] }).items
      }
      // Listed before: the list after a change shows it at once all the same.
      assert.deepEqual(await list(), [])
      const created = await register(s.pool, {
        url: 'http://127.0.0.1:9/in',
        events: ['coupon.issued', 'coupon.used'],
      })
      assert.equal(created.status, 201, JSON.stringify(created.body))
      assert.match(String(created.body.secret), /^whsec_/)
      assert.deepEqual(created.body.events, ['coupon.issued', 'coupon.used'])
      assert.equal(created.body.state, 'active')
      const mine = (await list()).find((w) => w.id === created.body.id)
      assert.ok(mine)
      assert.equal(mine.secret, undefined, 'the secret is never shown again')
      assert.deepEqual(mine.lag, { events: 0, seconds: 0 })
      const one = await getWebhook(s.pool, created.body.id)
      assert.equal(one.status, 200)
      assert.equal(one.body.secret, undefined)

      const given = await register(s.pool, {
        url: 'https://127.0.0.1/x',
        events: ALL,
        secret: 'a-secret-of-my-own-1234',
      })
      assert.equal(given.status, 201)
      assert.equal(given.body.secret, 'a-secret-of-my-own-1234')

      for (const [body, why] of [
        [{ url: 'ftp://127.0.0.1/in', events: ALL }, /http/],
        [{ url: 'file:///etc/passwd', events: ALL }, /http/],
        [{ url: 'http://10.0.0.7/in', events: ALL }, /WEBHOOK_ALLOWED_HOSTS/],
        [{ url: 'http://169.254.169.254/latest/meta-data/', events: ALL }, /WEBHOOK_ALLOWED_HOSTS/],
        [{ url: 'http://localhost/in', events: ALL }, /WEBHOOK_ALLOWED_HOSTS/],
        [{ url: 'http://127.0.0.1/in', events: ['coupon.exploded'] }, /./],
        [{ url: 'http://127.0.0.1/in', events: [] }, /./],
        [{ url: 'http://127.0.0.1/in' }, /./],
        [{ url: 'http://127.0.0.1/in', events: ALL, secret: 'short' }, /./],
        [{ url: 'http://127.0.0.1/in', events: ALL, extra: 1 }, /./],
        [{ url: 'http://127.0.0.1/a\u0000b', events: ALL }, /./],
      ] as const) {
        const r = await register(s.pool, body)
        assert.equal(r.status, 400, JSON.stringify(body))
        assert.equal(r.body.code, 'VALIDATION_FAILED')
        assert.match(String(r.body.message), why)
      }
      const anon = await s.pool.request({
        method: 'POST',
        path: '/v1/webhooks',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'http://127.0.0.1/in', events: ALL }),
      })
      assert.equal(anon.statusCode, 401)
      await anon.body.dump()

      const del = await s.pool.request({
        method: 'DELETE',
        path: `/v1/webhooks/${created.body.id}`,
        headers: admin,
      })
      assert.equal(del.statusCode, 204)
      await del.body.dump()
      assert.equal((await getWebhook(s.pool, created.body.id)).status, 404)
      assert.deepEqual(
        (await list()).map((w) => w.id),
        [given.body.id],
      )
    })

    it('signed batches of at most 100, in order, each event once', {
      timeout: 60_000,
    }, async (t) => {
      let secret = ''
      const r = await receiver(() => secret)
      const s = await suite.start({ env: FAST }, t)
      s.container.pump.start()
      const hook = await register(s.pool, { url: r.url, events: ALL })
      secret = String(hook.body.secret)
      const id = await createCoupon(s.app, { totalQuantity: 250 })
      await storm(s.pool, id, users('s', 0, 260))
      await waitIssued(r, id, 250)
      await waitFor('the sell-out', () => r.events().some((e) => e.type === 'coupon.sold_out'))
      assert.ok(
        r.deliveries.every((d) => d.verified),
        'every signature verifies',
      )
      assert.ok(r.deliveries.every((d) => d.events.length >= 1 && d.events.length <= 100))
      const all = r.deliveries.flatMap((d) => d.events)
      assertAscending(all)
      assert.equal(new Set(all.map((e) => e.id)).size, all.length, 'each once')
      const hookNow = await getWebhook(s.pool, hook.body.id)
      assert.equal(hookNow.body.lastStatus, 200)
      assert.equal(hookNow.body.lastError, null)
    })

    it('500 for a while, then recovery: everything arrives, in order', {
      timeout: 60_000,
    }, async (t) => {
      let secret = ''
      let failing = true
      const r = await receiver(
        () => secret,
        (_req, res) => {
          if (!failing) return false
          res.writeHead(500).end('down')
          return true
        },
      )
      const s = await suite.start({ env: FAST }, t)
      s.container.pump.start()
      const hook = await register(s.pool, { url: r.url, events: ['coupon.issued'] })
      secret = String(hook.body.secret)
      const id = await createCoupon(s.app, { totalQuantity: 150 })
      await storm(s.pool, id, users('f', 0, 150))
      const seen = await waitFor('a failed attempt recorded', async () => {
        const w = await getWebhook(s.pool, hook.body.id)
        return Number(w.body.attempts) >= 3 ? w.body : null
      })
      assert.equal(seen.lastStatus, 500)
      assert.equal(seen.lastError, 'HTTP 500')
      assert.equal(seen.state, 'active')
      assert.equal(r.deliveries.length, 0)
      failing = false
      await waitIssued(r, id, 150)
      assertAscending(r.deliveries.flatMap((d) => d.events))
      assert.ok(r.events().every((e) => e.type === 'coupon.issued'))
      // The dispatcher records the delivery after the receiver has answered it.
      const w = await waitFor('the delivery recorded', async () => {
        const got = await getWebhook(s.pool, hook.body.id)
        return Number(got.body.attempts) === 0 ? got.body : null
      })
      assert.equal(w.attempts, 0)
      assert.equal(w.lastError, null)
    })

    it('a hanging receiver times out without holding back another; redirects are not followed', {
      timeout: 60_000,
    }, async (t) => {
      let secretA = ''
      let secretB = ''
      let secretC = ''
      let hung = 0
      const hanging = await receiver(
        () => secretA,
        () => {
          hung++
          return true // never answers
        },
      )
      const fine = await receiver(() => secretB)
      const redirecting = await receiver(
        () => secretC,
        (_req, res) => {
          res.writeHead(302, { location: fine.url }).end()
          return true
        },
      )
      const s = await suite.start({ env: { ...FAST, WEBHOOK_TIMEOUT_MS: '500' } }, t)
      s.container.pump.start()
      const a = await register(s.pool, { url: hanging.url, events: ALL })
      secretA = String(a.body.secret)
      const b = await register(s.pool, { url: fine.url, events: ALL })
      secretB = String(b.body.secret)
      const c = await register(s.pool, { url: redirecting.url, events: ALL })
      secretC = String(c.body.secret)
      const id = await createCoupon(s.app, { totalQuantity: 50 })
      const started = Date.now()
      await storm(s.pool, id, users('h', 0, 50))
      await waitIssued(fine, id, 50)
      assert.ok(Date.now() - started < 15_000, 'the fine endpoint was not held back')
      const timedOut = await waitFor('the hanging endpoint to time out', async () => {
        const w = await getWebhook(s.pool, a.body.id)
        return w.body.lastError ? w.body : null
      })
      assert.equal(timedOut.lastError, 'no answer within 500 ms')
      assert.equal(timedOut.lastStatus, null)
      assert.ok(hung >= 1)
      const redirected = await waitFor('the redirect to be refused', async () => {
        const w = await getWebhook(s.pool, c.body.id)
        return w.body.lastError ? w.body : null
      })
      assert.equal(redirected.lastStatus, 302)
      assert.equal(redirected.lastError, 'redirect (302) not followed')
      // Every delivery the fine receiver got was signed with its own secret
      // (none came through the redirect).
      assert.ok(fine.deliveries.every((d) => d.verified))
      assert.equal(redirecting.deliveries.length, 0)
    })

    it('past the retry period: failing and skipped; re-enabled, it resumes where it stopped', {
      timeout: 60_000,
    }, async (t) => {
      let secret = ''
      let down = true
      const r = await receiver(
        () => secret,
        (_req, res) => {
          if (!down) return false
          res.writeHead(503).end()
          return true
        },
      )
      const s = await suite.start({ env: { ...FAST, WEBHOOK_RETRY_FOR_MS: '1000' } }, t)
      s.container.pump.start()
      const hook = await register(s.pool, { url: r.url, events: ['coupon.issued'] })
      secret = String(hook.body.secret)
      const id = await createCoupon(s.app, { totalQuantity: 30 })
      await storm(s.pool, id, users('d', 0, 30))
      await waitFor('the endpoint to be failing', async () => {
        const w = await getWebhook(s.pool, hook.body.id)
        return w.body.state === 'failing'
      })
      const lagged = await getWebhook(s.pool, hook.body.id)
      assert.equal((lagged.body.lag as { events: number }).events, 30)
      // The cockpit: the dashboard's snapshot and /metrics say the same.
      const overview = await waitFor('the dashboard to show it failing', async () => {
        const res = await s.pool.request({
          method: 'GET',
          path: '/v1/admin/overview',
          headers: admin,
        })
        const body = (await res.body.json()) as { webhooks: Record<string, unknown>[] }
        const w = body.webhooks.find((x) => x.id === hook.body.id)
        return w?.state === 'failing' ? w : null
      })
      assert.equal(overview.lagEvents, 30)
      assert.equal(overview.lastStatus, 503)
      assert.equal(overview.lastError, 'HTTP 503')
      assert.ok(Number(overview.lagSeconds) > 0)
      const metrics = await (await s.pool.request({ method: 'GET', path: '/metrics' })).body.text()
      const label = `{webhook="${hook.body.id}"}`
      assert.match(metrics, new RegExp(`firstcome_webhook_failing${label} 1`))
      assert.match(metrics, new RegExp(`firstcome_webhook_lag_events${label} 30`))
      assert.match(metrics, new RegExp(`firstcome_webhook_lag_seconds${label} [0-9.]+`))
      assert.match(
        metrics,
        new RegExp(
          `firstcome_webhook_deliveries_total{webhook="${hook.body.id}",outcome="failed"} [1-9]`,
        ),
      )
      down = false
      await new Promise((resolve) => setTimeout(resolve, 500))
      assert.equal(r.deliveries.length, 0, 'a failing endpoint is skipped')
      const enabled = await s.pool.request({
        method: 'POST',
        path: `/v1/webhooks/${hook.body.id}/enable`,
        headers: admin,
      })
      assert.equal(enabled.statusCode, 200)
      assert.equal(((await enabled.body.json()) as { state: string }).state, 'active')
      await waitIssued(r, id, 30)
      assertAscending(r.deliveries.flatMap((d) => d.events))
    })

    it('two dispatchers on one database: each event delivered once', {
      timeout: 60_000,
    }, async (t) => {
      let secret = ''
      const r = await receiver(() => secret)
      const one = await suite.start({ env: FAST }, t)
      const two = await suite.start({ env: FAST }, t)
      one.container.pump.start()
      two.container.pump.start()
      const hook = await register(one.pool, { url: r.url, events: ['coupon.issued'] })
      secret = String(hook.body.secret)
      const id = await createCoupon(one.app, { totalQuantity: 300 })
      await storm(one.pool, id, users('two', 0, 300))
      await waitIssued(r, id, 300)
      await new Promise((resolve) => setTimeout(resolve, 300))
      const all = r.deliveries.flatMap((d) => d.events).filter((e) => e.data.couponId === id)
      assert.equal(all.length, 300, 'no event delivered twice')
      assert.ok(one.container.pump.holding !== two.container.pump.holding, 'one holds the lease')
    })
  })
}
