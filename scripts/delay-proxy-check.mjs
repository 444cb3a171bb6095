// How the delaying proxy (packages/bench/dist/delay-proxy.js; `npm run build` first)
// behaves in front of a Redis: the round trip of 300 sequential PINGs direct and
// through the proxy (its added delay), then the proxy's CPU per request while
// redis-benchmark sends PINGs over 50 connections through it.
//   node scripts/delay-proxy-check.mjs [delayMs=1] [--precise] [--port 6379]
import { execFileSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { spawnDelayProxy } from '../packages/bench/dist/delay-proxy.js'

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
const via = await roundTrips(proxy.ports[0])
console.log(
  `${delayMs} ms each way${values.precise ? ' (precise)' : ''}: round trip direct p50 ${q(direct, 0.5)} ms; ` +
    `through the proxy min ${q(via, 0)} p50 ${q(via, 0.5)} p90 ${q(via, 0.9)} p99 ${q(via, 0.99)} ms`,
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
await proxy.stop()
