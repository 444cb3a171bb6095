/**
 * Benchmarks of events and webhooks (docs/benchmarks.md, "Events"):
 *
 *   node --import tsx scripts/bench-events.ts receive --port 18600
 *     a webhook receiver on 127.0.0.1 that answers 200, verifies nothing, keeps
 *     each body with its arrival (in memory: one receiver per run, about 17 kB
 *     a POST), and on SIGINT/SIGTERM reads them and prints what it got:
 *     distinct events, repeats, bodies that were not JSON, events per second
 *     while they arrived, and the lag from each event's createdAt (its commit)
 *     to its first arrival (p50, p99, max).
 *   node --import tsx scripts/bench-events.ts register --port 18600
 *     migrates DATABASE_URL and registers http://127.0.0.1:<port>/ for every type
 *     (what an admin's POST /v1/webhooks does), from the feed's head on.
 *   node --import tsx scripts/bench-events.ts deliver --port 18600
 *     sequences every event of DATABASE_URL, registers the receiver from the
 *     feed's start, and times one dispatcher (this process) delivering them all.
 */
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'
import { dialectOf } from '../src/config.js'
import { openDatabase } from '../src/db/database.js'
import { migrateToLatest } from '../src/db/migrate.js'
import { EventPump } from '../src/events/event-pump.js'
import { EVENT_TYPES, feedHead, sequence } from '../src/events/feed.js'
import { MemoryFeedSignal } from '../src/events/feed-signal.js'
import { insertWebhook, listWebhooks } from '../src/events/webhooks-repo.js'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { port: { type: 'string', default: '18600' } },
})
const port = Number(values.port)
const command = positionals[0]

const pct = (sorted: number[], p: number) =>
  sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0) : 0

if (command === 'receive') {
  // Each POST's body is kept as it came, with its arrival, and read only in the
  // report: on event day the receiver is the shop's, on its own machines, so
  // its reading of the events is not a cost of the run being measured here.
  const arrived: { at: number; body: Buffer }[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      arrived.push({ at: Date.now(), body: Buffer.concat(chunks) })
      res.writeHead(200).end()
    })
  })
  server.listen(port, '127.0.0.1', () => process.stderr.write(`receiving on ${port}\n`))
  const report = () => {
    const seen = new Set<number>()
    const lags: number[] = []
    let repeats = 0
    let unreadable = 0
    type Body = { events: { id: number; createdAt: string }[] }
    for (const { at, body } of arrived) {
      let events: Body['events']
      try {
        events = (JSON.parse(body.toString('utf8')) as Body).events
      } catch {
        unreadable++
        continue
      }
      for (const e of events) {
        if (seen.has(e.id)) {
          repeats++
          continue
        }
        seen.add(e.id)
        lags.push(at - Date.parse(e.createdAt))
      }
    }
    const first = arrived[0]?.at ?? 0
    const last = arrived.at(-1)?.at ?? 0
    const sorted = lags.sort((a, b) => a - b)
    const seconds = (last - first) / 1000
    process.stdout.write(
      `${JSON.stringify({
        events: seen.size,
        repeats,
        unreadable,
        posts: arrived.length,
        eventsPerSecond: seconds > 0 ? Math.round(seen.size / seconds) : null,
        lagMs: { p50: pct(sorted, 0.5), p99: pct(sorted, 0.99), max: sorted.at(-1) ?? 0 },
      })}\n`,
    )
    process.exit(0)
  }
  process.on('SIGINT', report)
  process.on('SIGTERM', report)
} else if (command === 'register' || command === 'deliver') {
  const url = process.env.DATABASE_URL ?? ''
  const dialect = dialectOf(url)
  const database = openDatabase(url, dialect, { poolSize: 4 })
  await migrateToLatest(database.db, dialect)
  const target = `http://127.0.0.1:${port}/`
  if (command === 'register') {
    const w = await insertWebhook(database.db, { url: target, types: EVENT_TYPES, secret: 'bench' })
    process.stdout.write(`webhook ${w.id} → ${target}\n`)
  } else {
    while ((await sequence(database.db)) > 0) {}
    const head = await feedHead(database.db)
    const w = await insertWebhook(database.db, { url: target, types: EVENT_TYPES, secret: 'bench' })
    await database.db
      .updateTable('webhooks')
      .set({ delivered_seq: 0 })
      .where('id', '=', w.id)
      .execute()
    const pump = new EventPump({
      db: database.db,
      signal: new MemoryFeedSignal(),
      webhooks: {
        timeoutMs: 10_000,
        retryForMs: 86_400_000,
        retryBaseMs: 1000,
        retryMaxMs: 60_000,
      },
      leaseMs: 15_000,
      tickMs: 20,
    })
    const started = performance.now()
    pump.start()
    for (;;) {
      const mine = (await listWebhooks(database.db)).find((x) => x.id === w.id)
      if ((mine?.deliveredSeq ?? 0) >= head) break
      await new Promise((r) => setTimeout(r, 50))
    }
    const seconds = (performance.now() - started) / 1000
    await pump.stop()
    process.stdout.write(
      `${JSON.stringify({ head, seconds: Number(seconds.toFixed(2)), seqPerSecond: Math.round(head / seconds) })}\n`,
    )
  }
  await database.close()
} else {
  process.stderr.write('usage: bench-events.ts receive|register|deliver [--port N]\n')
  process.exit(2)
}
