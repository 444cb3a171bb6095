/**
 * One scrape answers for every process: Redis mode with API_PROCESSES=2 and a
 * separate `firstcome worker`. After each storm, every one of several scrapes of
 * the API counts exactly the outcomes the clients received (whichever process
 * answered them), its histograms hold every request, and the worker's own
 * /metrics counts exactly the rows in the database.
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import pg from 'pg'
import {
  ADMIN_TOKEN,
  createCoupon,
  type Deployment,
  deployment,
  type Sample,
  scrape,
  sumOf,
} from '../helpers/cockpit.js'
import { skipUnless } from '../helpers/services.js'
import { httpPool, type IssueReply, storm, waitDrained, waitFor } from '../helpers/storm.js'

const skip = (await skipUnless('redis')) || (await skipUnless('postgres'))

const outcomeOf = (r: IssueReply) => (r.status === 201 ? 'WON' : String(r.code))

/** replies by outcome, as the clients saw them */
function received(replies: IssueReply[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of replies) counts[outcomeOf(r)] = (counts[outcomeOf(r)] ?? 0) + 1
  return counts
}

function counted(samples: Sample[], coupon: string): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const s of samples)
    if (s.name === 'firstcome_issue_outcomes_total' && s.labels.coupon === coupon && s.value > 0)
      counts[s.labels.outcome as string] = s.value
  return counts
}

async function rows(databaseUrl: string, couponId: number): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const r = await client.query(
      'select count(*)::int as n from coupon_issues where coupon_id = $1',
      [couponId],
    )
    return r.rows[0].n as number
  } finally {
    await client.end()
  }
}

describe('metrics across two API processes and a worker process', { skip }, () => {
  const cluster = deployment({ apiProcesses: 2, workers: 1 })
  let d: Deployment

  before(async () => {
    d = await cluster.start()
  })

  it('every scrape adds up to what the clients received and what the database holds', async () => {
    const pool = httpPool(d.server.url, 100)
    const all: Record<string, IssueReply[]> = {}
    try {
      const a = await createCoupon(d.server.url, { totalQuantity: 300 })
      const b = await createCoupon(d.server.url, { totalQuantity: 40 })
      const waves: [string, number, string[]][] = [
        [String(a), a, Array.from({ length: 1200 }, (_, i) => `a${i % 900}`)],
        [String(b), b, Array.from({ length: 300 }, (_, i) => `b${i % 250}`)],
        ['none', 987_654, Array.from({ length: 50 }, (_, i) => `n${i}`)],
        [String(a), a, Array.from({ length: 300 }, (_, i) => `c${i}`)],
      ]
      let requests = 0
      for (const [label, couponId, userIds] of waves) {
        const replies = await storm(pool, couponId, userIds)
        assert.ok(
          replies.every((r) => r.status !== null && r.status < 500),
          `no failures: ${JSON.stringify(received(replies))}`,
        )
        all[label] = [...(all[label] ?? []), ...replies]
        requests += replies.length
        for (let i = 0; i < 3; i++) {
          // A process that does not answer a scrape within its timeout is left out
          // of that one (by design: a scrape never hangs); on a loaded host, ask
          // again until both answered, then the sums must be exact.
          const samples = await waitFor('a scrape both API processes answered', async () => {
            const s = await scrape(d.server.url)
            return sumOf(s, 'firstcome_processes', { role: 'api' }) === 2 ? s : null
          })
          for (const [coupon, replies] of Object.entries(all))
            assert.deepEqual(counted(samples, coupon), received(replies), `coupon ${coupon}`)
          const issueRoute = { route: '/v1/coupons/:couponId/issues' }
          assert.equal(sumOf(samples, 'http_request_duration_seconds_count', issueRoute), requests)
        }
      }
      assert.equal(received(all[String(a)] ?? []).WON, 300)

      for (const couponId of [a, b]) {
        await waitDrained(pool, couponId)
        const inDb = await rows(d.databaseUrl, couponId)
        const worker = d.workers[0]?.metricsUrl ?? ''
        const persisted = await waitFor('the worker to count its rows', async () => {
          const n = sumOf(await scrape(worker), 'firstcome_wins_persisted_total', {
            coupon: String(couponId),
          })
          return n === inDb ? n : null
        })
        assert.equal(persisted, couponId === a ? 300 : 40)
        const coupon = { coupon: String(couponId) }
        // Each API process's figures are read at most once a second, and the
        // processes' gauges are merged by max: a process still a second behind
        // shows the coupon as it was, so every gauge is waited for, not one.
        const api = await waitFor('the gauges to catch up', async () => {
          const s = await scrape(d.server.url)
          const caughtUp =
            sumOf(s, 'firstcome_coupon_persisted', coupon) === inDb &&
            sumOf(s, 'firstcome_coupon_won', coupon) === inDb &&
            sumOf(s, 'firstcome_coupon_queued', coupon) === 0 &&
            sumOf(s, 'firstcome_coupon_remaining', coupon) === 0
          return caughtUp ? s : null
        })
        assert.equal(sumOf(api, 'firstcome_coupon_won', coupon), inDb)
        assert.equal(sumOf(api, 'firstcome_coupon_queued', coupon), 0)
        assert.equal(sumOf(api, 'firstcome_coupon_remaining', coupon), 0)
        assert.equal(sumOf(api, 'firstcome_queue_oldest_age_seconds', coupon), 0)
      }
    } finally {
      await pool.close()
    }
  })

  it("the dashboard counts the container's API processes, not the worker", async () => {
    const overview = async () => {
      const res = await fetch(`${d.server.url}/v1/admin/overview`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
      return (await res.json()) as { apiProcesses: number; workersAlive: number }
    }
    await waitFor('both API processes published', async () => (await overview()).apiProcesses === 2)
    for (let i = 0; i < 3; i++) {
      const o = await overview()
      assert.equal(o.apiProcesses, 2)
      assert.equal(o.workersAlive, 1)
    }
  })

  it('the worker serves /healthz, /readyz and its own metrics; the API exports readiness', async () => {
    const worker = d.workers[0]?.metricsUrl ?? ''
    // No deprecation noise at start, from the worker's server or the API's.
    for (const p of [d.server, ...d.workers]) assert.doesNotMatch(p.output(), /Deprecation|FSTDEP/)
    assert.equal((await fetch(`${worker}/healthz`)).status, 200)
    const ready = await fetch(`${worker}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), {
      status: 'ready',
      checks: { queue: 'up', database: 'up' },
    })
    const samples = await scrape(worker)
    assert.equal(sumOf(samples, 'firstcome_processes', { role: 'worker' }), 1)
    assert.ok(sumOf(samples, 'firstcome_worker_passes_total', { result: 'ok' }) > 0)
    assert.ok(sumOf(samples, 'firstcome_persist_batch_size_count', { writer: 'stream' }) > 0)
    const api = await scrape(d.server.url)
    assert.equal(sumOf(api, 'firstcome_dependency_up', { dependency: 'gate' }), 1)
    assert.equal(sumOf(api, 'firstcome_dependency_up', { dependency: 'database' }), 1)
    assert.equal(sumOf(api, 'firstcome_workers_alive'), 1)
    assert.ok(sumOf(api, 'firstcome_gate_batch_size_count') > 0)
    assert.ok(sumOf(api, 'firstcome_http_open_connections') >= 1)
  })
})
