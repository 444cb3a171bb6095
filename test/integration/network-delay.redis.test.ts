/**
 * Redis mode on PostgreSQL with a network between the parts: a delaying proxy
 * process adds 1 ms, then 0.5 ms, each way between the API and Redis and between
 * the stream worker and the database. The same storm runs on loopback and
 * through each delay; every run ends with exactly the quantity won (ranks
 * 1..N), every 201 a row with its rank, no duplicate. Throughput and p99 of both runs are printed side
 * by side (not asserted: the machine is shared), with the proxy's own CPU.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { meanTimeInProxy } from '../../packages/bench/src/delay-proxy.js'
import { createCoupon } from '../helpers/app.js'
import { redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import {
  type IssueReply,
  oneTo,
  sortedRanks,
  storm,
  tally,
  twiceShuffled,
  users,
  winsOf,
} from '../helpers/storm.js'

/** one-way delays, ms: a millisecond, and one under the event loop's timer resolution */
const DELAYS_MS = [1, 0.5]
const TOTAL = 300
const USERS = 2000
const CONNECTIONS = 200

interface Run {
  label: string
  requests: number
  seconds: number
  p50: number
  p99: number
  /** CPU of this process (client, API, worker) during the storm, ms */
  cpuMs: number
  /** CPU of the delaying proxy process during the storm, ms */
  proxyCpuMs: number | null
  /** the mean time a chunk spent in the proxy during the storm, ms */
  proxyMeanMs: number | null
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

describe(`Redis mode on PostgreSQL through ${DELAYS_MS.join(' and ')} ms one-way delays`, {
  skip: await skipUnlessRedisSuite({ dialect: 'postgres' }),
}, () => {
  const loopback = redisSuite({ dialect: 'postgres' })
  const delayed = DELAYS_MS.map(
    (delayMs) => [`${delayMs} ms each way`, redisSuite({ dialect: 'postgres', delayMs })] as const,
  )
  const runs: Run[] = []

  for (const [label, suite] of [['loopback', loopback] as const, ...delayed]) {
    it(`${label}: ${TOTAL} wins of ${2 * USERS} requests, ranks 1..${TOTAL}, every win a row`, async (t) => {
      const service = await suite.start({ connections: CONNECTIONS }, t)
      const couponId = await createCoupon(service.app, { totalQuantity: TOTAL })
      const proxyCpu = label === 'loopback' ? null : suite.delayProxy.cpuMs()
      const inProxy = label === 'loopback' ? null : suite.delayProxy.timeInProxy()
      const cpu = process.cpuUsage()
      const started = performance.now()
      const replies: IssueReply[] = await storm(
        service.pool,
        couponId,
        twiceShuffled(users('user-', 0, USERS)),
      )
      const seconds = (performance.now() - started) / 1000
      const used = process.cpuUsage(cpu)
      const proxyAfter = label === 'loopback' ? null : suite.delayProxy.cpuMs()
      const inProxyAfter = label === 'loopback' ? null : suite.delayProxy.timeInProxy()

      const counts = tally(replies)
      assert.deepEqual(
        Object.keys(counts).sort(),
        ['201', '409 ALREADY_ISSUED', '409 SOLD_OUT'].filter((k) => counts[k]),
        `unexpected answers: ${JSON.stringify(counts)}`,
      )
      const wins = winsOf(replies)
      assert.equal(wins.size, TOTAL)
      assert.deepEqual(sortedRanks(wins.values()), oneTo(TOTAL))
      const view = await suite.assertSettled(service.pool, couponId, wins, 60_000)
      assert.equal(view.rows, TOTAL)
      assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(TOTAL))

      const ms = replies.map((r) => r.ms).sort((a, b) => a - b)
      runs.push({
        label,
        requests: replies.length,
        seconds,
        p50: percentile(ms, 50),
        p99: percentile(ms, 99),
        cpuMs: (used.user + used.system) / 1000,
        proxyCpuMs: proxyCpu !== null && proxyAfter !== null ? proxyAfter - proxyCpu : null,
        proxyMeanMs: inProxy && inProxyAfter ? meanTimeInProxy(inProxy, inProxyAfter) : null,
      })
    })
  }

  it('prints the runs side by side', () => {
    for (const r of runs) {
      const proxy =
        r.proxyCpuMs === null
          ? ''
          : `, proxy CPU ${r.proxyCpuMs.toFixed(0)} ms (${((100 * r.proxyCpuMs) / r.cpuMs).toFixed(0)} % of the service's), mean time in it ${r.proxyMeanMs?.toFixed(3) ?? '?'} ms`
      console.log(
        `  ${r.label.padEnd(16)} ${r.requests} requests in ${r.seconds.toFixed(2)} s = ${(r.requests / r.seconds).toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms; client+API+worker CPU ${r.cpuMs.toFixed(0)} ms${proxy}`,
      )
    }
    assert.equal(runs.length, 1 + DELAYS_MS.length)
  })
})
