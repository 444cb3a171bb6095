// How the delaying proxy (packages/bench/dist/delay-proxy.js; `npm run build` first)
// behaves in front of a Redis: the round trip of 300 sequential PINGs direct and
// through the proxy (its added delay), then the proxy's CPU per request while
// redis-benchmark sends PINGs over 50 connections through it, then its CPU per
// MB forwarded while one connection streams 64 MB through it to a sink.
//   node scripts/delay-proxy-check.mjs [delayMs=1] [--precise] [--port 6379]
import { execFileSync } from 'node:child_process'
import { createConnection, createServer } from 'node:net'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { meanTimeInProxy, spawnDelayProxy } from '../packages/bench/dist/delay-proxy.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    precise: { type: 'boolean', default: false },
    port: { type: 'string', default: '6379' },
  },
})
const delayMs = Number(positionals[0] ?? 1)
const port = Number(values.port)
const proxy = await spawnDelayProxy(delayMs, [{ host: '127.0.0.1', port }], {
  precise: values.precise,
})

async function roundTrips(to) {
  const r = new Redis({ port: to, host: '127.0.0.1' })
  await r.ping()
  const ms = []
  for (let i = 0; i < 300; i++) {
    const t = performance.now()
    await r.ping()
    ms.push(performance.now() - t)
  }
  r.disconnect()
  return ms.sort((a, b) => a - b)
}
const q = (a, p) => a[Math.min(a.length - 1, Math.floor(p * a.length))].toFixed(2)
const direct = await roundTrips(port)
const inProxy = proxy.timeInProxy()
const via = await roundTrips(proxy.ports[0])
await new Promise((done) => setTimeout(done, 400)) // the proxy reports every 250 ms
const meanIn = meanTimeInProxy(inProxy, proxy.timeInProxy())
console.log(
  `${delayMs} ms each way${values.precise ? ' (precise)' : ''}: round trip direct p50 ${q(direct, 0.5)} ms; ` +
    `through the proxy min ${q(via, 0)} p50 ${q(via, 0.5)} p90 ${q(via, 0.9)} p99 ${q(via, 0.99)} ms; ` +
    `mean time in the proxy ${meanIn === null ? '-' : meanIn.toFixed(3)} ms each way`,
)
const requests = 40_000
const before = proxy.cpuMs()
const out = execFileSync(
  'redis-benchmark',
  ['-p', String(proxy.ports[0]), '-c', '50', '-n', String(requests), '-t', 'ping', '-q'],
  { encoding: 'utf8' },
)
const cpu = proxy.cpuMs() - before
console.log(
  `redis-benchmark through it: ${out.trim().split('\r').pop()}; proxy CPU ${cpu} ms, ${((cpu * 1000) / requests).toFixed(1)} µs per request`,
)

// Bulk: 64 MB in 64 KiB writes through a second proxy to a sink in this process.
const sink = createServer((s) => s.resume())
await new Promise((done) => sink.listen(0, '127.0.0.1', done))
const bulk = await spawnDelayProxy(delayMs, [{ host: '127.0.0.1', port: sink.address().port }], {
  precise: values.precise,
})
const MB = 64
const block = Buffer.alloc(64 * 1024, 7)
const bulkBefore = bulk.cpuMs()
const bulkStarted = performance.now()
await new Promise((done, fail) => {
  const s = createConnection({ host: '127.0.0.1', port: bulk.ports[0] }, async () => {
    for (let i = 0; i < MB * 16; i++) {
      if (!s.write(block)) await new Promise((drained) => s.once('drain', drained))
    }
    s.end()
  })
  s.once('error', fail)
  s.once('close', done)
  s.resume()
})
const bulkCpu = bulk.cpuMs() - bulkBefore
const bulkSeconds = (performance.now() - bulkStarted) / 1000
console.log(
  `${MB} MB streamed through it in ${bulkSeconds.toFixed(2)} s: proxy CPU ${bulkCpu} ms, ${(bulkCpu / MB).toFixed(1)} ms per MB`,
)
await bulk.stop()
sink.close()
await proxy.stop()
