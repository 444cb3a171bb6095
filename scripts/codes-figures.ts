/**
 * Measures partner codes at full size against a `firstcome serve` process
 * (embedded mode) on a throw-away database:
 *   - uploads of 1,000,000 codes (16 characters each) as CSV and as JSON:
 *     time, and the server's peak RSS over idle;
 *   - the winners' export of 1,000,000 rows: rows/s, and the server's peak RSS
 *     over idle while it streams.
 *
 *   export PATH="$(scripts/supported-node.sh)/bin:$PATH"   # Node 24, as the service
 *   node --import tsx scripts/codes-figures.ts [sqlite|postgres|mysql] [rows] [redis]
 *
 * With `redis` the server runs in Redis mode (the Redis on 127.0.0.1:6379, under
 * a key prefix of its own): an API process whose heap holds no gate, so its RSS
 * shows the upload's and the export's own memory. Embedded, the in-process gate
 * holds every win (a million: hundreds of MB), and V8's heap growth
 * (HEAP_GROWING_PERCENT of that) lets the garbage of any work reach tens of MB
 * before a full collection.
 *
 * Needs the database services the tests use (README "Tests"). Prints one line a
 * figure, and the machine's load average before and after (the figures depend on
 * it); docs/benchmarks.md keeps them.
 */
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { ADMIN_TOKEN, admin } from '../test/helpers/app.js'
import { createTestDatabase } from '../test/helpers/databases.js'
import {
  download,
  readingStopped,
  rssOf,
  sampleRss,
  seedWinners,
} from '../test/helpers/export-load.js'
import { startServer, stopAll } from '../test/helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../test/helpers/redis.js'

const dialect = (process.argv[2] ?? 'sqlite') as 'sqlite' | 'postgres' | 'mysql'
const rows = Number(process.argv[3] ?? 1_000_000)
const redisMode = process.argv[4] === 'redis'
const prefix = uniquePrefix()
const MB = 1024 * 1024
const mb = (bytes: number) => (bytes / MB).toFixed(1)

const load = () =>
  loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')
console.log(`node ${process.version}; load average ${load()}`)
const db = await createTestDatabase(dialect)
const server = await (async () => {
  console.log(
    `seeding ${rows} winners with codes on ${dialect}, ${redisMode ? 'Redis mode' : 'embedded'}…`,
  )
  const exportId = await seedWinners(db.database.db, rows)
  const s = await startServer({
    databaseUrl: db.url,
    adminToken: ADMIN_TOKEN,
    timeoutMs: 300_000,
    env: redisMode ? { REDIS_URL, REDIS_KEY_PREFIX: prefix } : {},
  })
  // In Redis mode the server loads the seeded coupon's state (its million wins
  // and codes) into Redis shortly after it starts: measured during that, an
  // upload's figure would be the load's. Wait until it has stopped reading.
  await sleep(3000)
  await readingStopped(s.pid, 32 * 1024, 300_000)
  return Object.assign(s, { exportId })
})()

async function newCoupon(): Promise<number> {
  const now = Date.now()
  const res = await fetch(`${server.url}/v1/coupons`, {
    method: 'POST',
    headers: { ...admin, 'content-type': 'application/json' },
    body: JSON.stringify({
      title: 'codes',
      totalQuantity: rows,
      discountAmount: 1,
      minAvailableAmount: 0,
      issueStart: new Date(now).toISOString(),
      issueEnd: new Date(now + 3_600_000).toISOString(),
    }),
  })
  return ((await res.json()) as { id: number }).id
}

function codes(): string[] {
  const bytes = randomBytes(rows * 8)
  return Array.from({ length: rows }, (_, i) => bytes.toString('hex', i * 8, i * 8 + 8))
}

async function upload(kind: 'csv' | 'json') {
  const id = await newCoupon()
  const list = codes()
  const body = kind === 'csv' ? `${list.join('\n')}\n` : JSON.stringify({ codes: list })
  const idle = rssOf(server.pid)
  const rss = sampleRss(server.pid)
  const started = performance.now()
  const res = await fetch(`${server.url}/v1/coupons/${id}/codes`, {
    method: 'POST',
    headers: { ...admin, 'content-type': kind === 'csv' ? 'text/csv' : 'application/json' },
    body,
  })
  const ms = performance.now() - started
  const peak = rss.stop()
  const answer = await res.text()
  if (res.status !== 200) throw new Error(`upload: ${res.status} ${answer}`)
  console.log(
    `upload ${kind}: ${rows} codes, ${mb(body.length)} MB body, ${(ms / 1000).toFixed(1)} s ` +
      `(${Math.round(rows / (ms / 1000))} codes/s); server RSS idle ${mb(idle)} MB, peak +${mb(peak - idle)} MB`,
  )
}

try {
  await upload('csv')
  await upload('json')
  // Warm the export's path, then the measured download.
  await download(server.url, server.exportId, { token: ADMIN_TOKEN, abortAfterBytes: 65_536 })
  const idle = rssOf(server.pid)
  const rss = sampleRss(server.pid)
  const got = await download(server.url, server.exportId, { token: ADMIN_TOKEN })
  const peak = rss.stop()
  if (got.status !== 200 || got.lines !== rows + 1)
    throw new Error(`export: ${JSON.stringify(got)}`)
  console.log(
    `export: ${rows} rows, ${mb(got.bytes)} MB in ${(got.ms / 1000).toFixed(1)} s ` +
      `(${Math.round(rows / (got.ms / 1000))} rows/s); server RSS idle ${mb(idle)} MB, peak +${mb(peak - idle)} MB`,
  )
} catch (err) {
  console.error(`${String(err)}\nserver output:\n${server.output().slice(-3000)}`)
  process.exitCode = 1
} finally {
  console.log(`load average ${load()}`)
  await stopAll([server])
  await db.drop()
  if (redisMode) {
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
  }
}
