/**
 * The dispatcher `kill -9`'d mid-batch, on every dialect: a `firstcome serve`
 * delivers a webhook's first batch, and is killed while its receiver holds the
 * second POST unanswered. A new process on the same database takes the lease
 * once it expires and resumes where the endpoint's cursor stands: every event
 * arrives (the batch in flight at the kill again: at least once), in order,
 * nothing lost.
 */
import assert from 'node:assert/strict'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import type { FeedEvent } from '../../src/events/feed.js'
import { ADMIN_TOKEN, admin, createCoupon } from '../helpers/app.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

const WINS = 250

for (const dialect of DIALECTS) {
  describe(`webhook dispatcher killed mid-batch (${dialect})`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    const servers: ServerProcess[] = []
    let databaseUrl = ''
    const held: ServerResponse[] = []
    const batches: FeedEvent[][] = []
    let posts = 0
    let onHeld: () => void = () => {}
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        posts++
        if (posts === 2) {
          // The second POST is never answered: its dispatcher dies first.
          held.push(res)
          onHeld()
          return
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: FeedEvent[] }
        batches.push(body.events)
        res.writeHead(200).end()
      })
    })
    after(async () => {
      await stopAll(servers)
      for (const res of held) res.destroy()
      await new Promise((r) => receiver.close(r))
      if (databaseUrl) await dropDatabaseUrl(databaseUrl)
    })

    it('resumes from the cursor in the database; every event arrives, in order', {
      timeout: 120_000,
    }, async () => {
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
      const { port } = receiver.address() as AddressInfo
      databaseUrl = await createDatabaseUrl(dialect)
      const env = {
        EVENTS_TICK_MS: '20',
        EVENTS_LEASE_MS: '1500',
        WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
        WEBHOOK_RETRY_BASE_MS: '50',
      }
      const first = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN, env })
      servers.push(first)
      const hook = await fetch(`${first.url}/v1/webhooks`, {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ url: `http://127.0.0.1:${port}/in`, events: ['coupon.issued'] }),
      })
      assert.equal(hook.status, 201)
      const heldNow = new Promise<void>((r) => {
        onHeld = r
      })
      const id = await createCoupon(first, { totalQuantity: WINS })
      // Wins one at a time: each its own event, all committed before the kill.
      for (let i = 0; i < WINS; i++) {
        const res = await fetch(`${first.url}/v1/coupons/${id}/issues`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ userId: `k${i}` }),
        })
        assert.equal(res.status, 201)
      }
      await heldNow
      first.signal('SIGKILL')
      await first.exited
      assert.equal(batches.length, 1, 'one batch answered before the kill')

      const second = await startServer({ databaseUrl, adminToken: ADMIN_TOKEN, env })
      servers.push(second)
      const received = () => {
        const ids = new Set<number>()
        for (const b of batches) for (const e of b) ids.add(e.id)
        return ids
      }
      await waitFor(`all ${WINS} events after the restart`, () => received().size >= WINS, 60_000)
      const all = batches.flat()
      for (let i = 1; i < all.length; i++) {
        assert.ok(Number(all[i - 1]?.id) < Number(all[i]?.id), `in order at ${i}`)
      }
      assert.deepEqual(
        new Set(all.map((e) => e.data.userId)),
        new Set(Array.from({ length: WINS }, (_, i) => `k${i}`)),
      )
    })
  })
}
