/**
 * An endpoint's runs in the dispatcher (event-pump.ts), on every dialect:
 * - the next events are read while a POST is in flight; a read that fails
 *   meanwhile (the database away) ends the run with the failure, to be retried
 *   from its cursor: never a rejection nobody handles (which ends the process),
 *   and what was delivered stays delivered;
 * - a run that ends while the endpoints are being listed is not followed by one
 *   started from that list, whose cursor may be from before the run's last
 *   move: each event is sent once;
 * - a stop does not wait out WEBHOOK_TIMEOUT_MS for a receiver that does not
 *   answer: the POST is cut, which is not the endpoint's failure, and the next
 *   dispatcher sends that batch again.
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type KyselyPlugin, SelectQueryNode } from 'kysely'
import type { Db } from '../../src/db/database.js'
import { EventPump } from '../../src/events/event-pump.js'
import { sequence } from '../../src/events/feed.js'
import { MemoryFeedSignal } from '../../src/events/feed-signal.js'
import { findWebhook, insertWebhook } from '../../src/events/webhooks-repo.js'
import {
  createTestDatabase,
  DIALECTS,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { slowQueries } from '../helpers/slow-queries.js'
import { waitFor } from '../helpers/wait.js'

/** The list of endpoints (webhooks, no where) is answered `ms` late. */
const slowList = (ms: number) =>
  slowQueries(
    ms,
    (node) =>
      SelectQueryNode.is(node) && !node.where && JSON.stringify(node.from).includes('"webhooks"'),
  )

/** One read of the feed fails: the `nth` (from 1) that selects events as the feed shows them. */
function failingFeedRead(nth: number): KyselyPlugin & { reads: number } {
  return {
    reads: 0,
    transformQuery(args) {
      if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes('"created"')) {
        if (++this.reads === nth) throw new Error('the database went away')
      }
      return args.node
    },
    async transformResult(args) {
      return args.result
    },
  }
}

/**
 * A receiver on 127.0.0.1 that hands each POST's event ids to `onBatch` and
 * answers 200 `delayMs` later (a function: asked per POST); the URL of a
 * webhook to it, and how to close it.
 */
async function slowReceiver(delayMs: number | (() => number), onBatch: (ids: number[]) => void) {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const { events } = JSON.parse(Buffer.concat(chunks).toString()) as {
        events: { id: number }[]
      }
      onBatch(events.map((e) => e.id))
      const delay = typeof delayMs === 'number' ? delayMs : delayMs()
      const timer = setTimeout(() => res.writeHead(200).end('ok'), delay)
      res.on('close', () => clearTimeout(timer))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/hook`,
    close: () => {
      server.closeAllConnections()
      return new Promise((r) => server.close(r))
    },
  }
}

/** `n` coupon.issued events of the coupon, users `${prefix}0`…, sequenced. */
async function issuedEvents(db: Db, couponId: number, prefix: string, n: number) {
  const occurred = new Date()
  await db
    .insertInto('events')
    .values(
      Array.from({ length: n }, (_, i) => ({
        type: 'coupon.issued',
        coupon_id: couponId,
        user_id: `${prefix}${i}`,
        rank: i + 1,
        issued_at: occurred,
        occurred_at: occurred,
      })),
    )
    .execute()
  assert.equal(await sequence(db), n)
}

/** A dispatcher over `db` seen through `plugin`, quick to retry unless `o` says otherwise. */
function startPump(
  db: Db,
  plugin: KyselyPlugin | null,
  o: { timeoutMs?: number; retryBaseMs?: number; allowedHosts?: string[] } = {},
): EventPump {
  const { timeoutMs = 2000, retryBaseMs = 20, allowedHosts = null } = o
  return new EventPump({
    db: plugin ? db.withPlugin(plugin) : db,
    signal: new MemoryFeedSignal(),
    webhooks: {
      timeoutMs,
      retryForMs: 60_000,
      retryBaseMs,
      retryMaxMs: Math.max(50, retryBaseMs),
    },
    allowedHosts,
    leaseMs: 5000,
    tickMs: 10,
  }).start()
}

for (const dialect of DIALECTS) {
  describe(`webhook runs (${dialect})`, { skip: await skipUnlessDialect(dialect) }, () => {
    let t: TestDatabase
    let db: Db
    before(async () => {
      t = await createTestDatabase(dialect)
      db = t.database.db
    })
    after(() => t.drop())

    /** A receiver counting the arrivals of each event id, and a coupon.issued webhook to it. */
    async function countedEndpoint(answerAfterMs: number | (() => number)) {
      const seen = new Map<number, number>()
      const receiver = await slowReceiver(answerAfterMs, (ids) => {
        for (const id of ids) seen.set(id, (seen.get(id) ?? 0) + 1)
      })
      const w = await insertWebhook(db, {
        url: receiver.url,
        types: ['coupon.issued'],
        secret: 's',
      })
      return { seen, receiver, w }
    }

    it('a read failing during a POST is handled, and delivery resumes', async () => {
      let received = 0
      // Slow enough that the next read settles while this POST is in flight.
      const receiver = await slowReceiver(30, (ids) => {
        received += ids.length
      })
      const unhandled: unknown[] = []
      const onUnhandled = (reason: unknown) => unhandled.push(reason)
      process.on('unhandledRejection', onUnhandled)
      const w = await insertWebhook(db, {
        url: receiver.url,
        types: ['coupon.issued'],
        secret: 's',
      })
      // A full read-ahead (1000), so the next read is made while its batches are POSTed.
      await issuedEvents(db, 1, 'u', 1000)
      const pump = startPump(db, failingFeedRead(2))
      try {
        await waitFor('1000 events delivered, the cursor past them', async () => {
          const row = await findWebhook(db, w.id)
          return received >= 1000 && row !== null && row.deliveredSeq > w.deliveredSeq + 999
        })
        // The failed read's run has ended; nothing left unhandled by it.
        await new Promise((r) => setTimeout(r, 50))
        assert.deepEqual(unhandled, [])
      } finally {
        await pump.stop()
        process.off('unhandledRejection', onUnhandled)
        await receiver.close()
      }
    })

    it('a run ending while the endpoints are listed is not followed by a stale one', async () => {
      // Answered while the next list of endpoints is on its way.
      const { seen, receiver, w } = await countedEndpoint(100)
      await issuedEvents(db, 2, 'v', 5)
      const pump = startPump(db, slowList(150))
      try {
        await waitFor('the 5 events delivered', async () => {
          const row = await findWebhook(db, w.id)
          return seen.size === 5 && row !== null && row.deliveredSeq >= w.deliveredSeq + 5
        })
        // A few more lists and runs.
        await sleep(600)
        assert.deepEqual([...seen.values()], [1, 1, 1, 1, 1], 'each event sent once')
      } finally {
        await pump.stop()
        await receiver.close()
      }
    })

    it('a stop cuts a POST left unanswered: no failure recorded, the batch sent again', async () => {
      let answerAfterMs = 600_000
      const { seen, receiver, w } = await countedEndpoint(() => answerAfterMs)
      await issuedEvents(db, 3, 'x', 3)
      // A time limit far above the stop's wait: a stop that waited for it would show.
      const first = startPump(db, null, { timeoutMs: 120_000 })
      try {
        await waitFor('the batch POSTed', async () => seen.size === 3)
        const t0 = performance.now()
        await first.stop()
        const stopMs = performance.now() - t0
        assert.ok(stopMs < 30_000, `stop took ${stopMs.toFixed(0)} ms`)
        const row = await findWebhook(db, w.id)
        assert.equal(row?.deliveredSeq, w.deliveredSeq, 'the cut batch is not delivered')
        assert.equal(row?.attempts, 0, 'a POST cut by the stop is not a failed attempt')
        assert.equal(row?.lastError, null)
        answerAfterMs = 0
        const next = startPump(db, null)
        try {
          await waitFor('the batch delivered by the next dispatcher', async () => {
            const r = await findWebhook(db, w.id)
            return r !== null && r.deliveredSeq >= w.deliveredSeq + 3
          })
          assert.deepEqual([...seen.values()], [2, 2, 2], 'sent again once, at least once')
        } finally {
          await next.stop()
        }
      } finally {
        await first.stop()
        await receiver.close()
      }
    })

    it('a POST that timed out waits out its backoff after the time limit, not from its start', async () => {
      const arrivals: number[] = []
      const hanging = await slowReceiver(600_000, () => arrivals.push(performance.now()))
      const w = await insertWebhook(db, { url: hanging.url, types: ['coupon.issued'], secret: 's' })
      await issuedEvents(db, 4, 'y', 1)
      // Each wait a random 200–400 ms: after a 300 ms time limit, 500 ms or more apart.
      const pump = startPump(db, null, { timeoutMs: 300, retryBaseMs: 400 })
      try {
        await waitFor('three attempts', async () => arrivals.length >= 3)
        const gaps = arrivals.slice(1).map((t, i) => t - (arrivals[i] ?? t))
        for (const gap of gaps) assert.ok(gap >= 480, `attempts ${gaps.map(Math.round)} ms apart`)
        const row = await findWebhook(db, w.id)
        assert.equal(row?.lastError, 'no answer within 300 ms')
      } finally {
        await pump.stop()
        await db.deleteFrom('webhooks').where('id', '=', w.id).execute()
        await hanging.close()
      }
    })

    it('an endpoint whose host left WEBHOOK_ALLOWED_HOSTS is sent nothing; put back, it resumes', async () => {
      const { seen, receiver, w } = await countedEndpoint(0)
      await issuedEvents(db, 5, 'z', 3)
      const narrowed = startPump(db, null, { allowedHosts: ['hooks.example.com'] })
      try {
        const refused = await waitFor('a refused attempt recorded', async () => {
          const row = await findWebhook(db, w.id)
          return row && row.attempts >= 1 ? row : null
        })
        assert.match(String(refused.lastError), /WEBHOOK_ALLOWED_HOSTS/)
        assert.equal(refused.deliveredSeq, w.deliveredSeq)
        assert.equal(seen.size, 0, 'nothing POSTed')
      } finally {
        await narrowed.stop()
      }
      await db.updateTable('webhooks').set({ next_attempt_at: 0 }).where('id', '=', w.id).execute()
      const allowed = startPump(db, null, { allowedHosts: ['127.0.0.1'] })
      try {
        await waitFor('the 3 events delivered', async () => seen.size === 3)
      } finally {
        await allowed.stop()
        await db.deleteFrom('webhooks').where('id', '=', w.id).execute()
        await receiver.close()
      }
    })
  })
}
