/**
 * The dashboard's overview is the deployment's, whichever API process answers:
 * two separately started `firstcome serve` processes (as two containers are)
 * behind a round-robin proxy. After known traffic through the proxy, every poll
 * of the overview — answered by each server in turn — counts exactly what the
 * clients received (requests, wins, refusals by code), its latency buckets are
 * the sum of both servers' own, and it counts two API processes. A server killed
 * drops out within seconds.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import { type Sample, scrape } from '../helpers/cockpit.js'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { getFresh, RoundRobinProxy } from '../helpers/round-robin-proxy.js'
import { skipUnless } from '../helpers/services.js'
import { httpPool, type IssueReply, storm, users, waitFor } from '../helpers/storm.js'

const skip = (await skipUnless('redis')) || (await skipUnless('postgres'))
const ISSUE_ROUTE = '/v1/coupons/:couponId/issues'
/** how long a killed process may still be counted: its entry's life, a cached snapshot, margin */
const DROP_OUT_MS = 8000

interface Overview {
  at: number
  apiProcesses: number | null
  workersAlive: number | null
  issueLatency: [number | null, number][]
  coupons: { id: number; outcomes: Record<string, number> }[]
}

const outcomeOf = (r: IssueReply) => (r.status === 201 ? 'WON' : String(r.code))

function tally(replies: IssueReply[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of replies) counts[outcomeOf(r)] = (counts[outcomeOf(r)] ?? 0) + 1
  return counts
}

/** The issue route's latency buckets in a scrape: `le` → count. */
function issueBuckets(samples: Sample[]): Map<string, number> {
  const buckets = new Map<string, number>()
  for (const s of samples) {
    if (s.name !== 'http_request_duration_seconds_bucket' || s.labels.route !== ISSUE_ROUTE)
      continue
    const le = s.labels.le as string
    buckets.set(le, (buckets.get(le) ?? 0) + s.value)
  }
  return buckets
}

const outcomesIn = (samples: Sample[]) =>
  samples
    .filter((s) => s.name === 'firstcome_issue_outcomes_total')
    .reduce((n, s) => n + s.value, 0)

describe('the overview across two API servers behind a proxy', { skip }, () => {
  const prefix = uniquePrefix()
  const servers: ServerProcess[] = []
  let databaseUrl = ''
  let proxy: RoundRobinProxy

  const poll = async (url: string): Promise<Overview> => {
    const res = await getFresh(`${url}/v1/admin/overview`, {
      authorization: `Bearer ${ADMIN_TOKEN}`,
    })
    assert.equal(res.status, 200, res.body)
    return JSON.parse(res.body) as Overview
  }

  before(async () => {
    databaseUrl = await createDatabaseUrl('postgres')
    for (let i = 0; i < 2; i++) {
      servers.push(
        await startServer({
          databaseUrl,
          adminToken: ADMIN_TOKEN,
          env: { REDIS_URL, REDIS_KEY_PREFIX: prefix },
        }),
      )
    }
    proxy = new RoundRobinProxy(servers.map((s) => Number(new URL(s.url).port)))
    await proxy.start()
  })
  after(async () => {
    await proxy?.close()
    await stopAll(servers)
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('counts every request on every poll, and forgets a killed server', async () => {
    const api = { url: proxy.url }
    const limited = await createCoupon(api, { totalQuantity: 30 })
    const later = await createCoupon(api, {
      issueStart: new Date(Date.now() + 3_600_000).toISOString(),
      issueEnd: new Date(Date.now() + 7_200_000).toISOString(),
    })
    const pool = httpPool(proxy.url, 8)
    const replies: Record<number, IssueReply[]> = {}
    try {
      replies[limited] = await storm(pool, limited, users('u', 0, 60))
      // Winners again: ALREADY_ISSUED (or SOLD_OUT once sold out); and a window not open.
      replies[limited].push(...(await storm(pool, limited, users('u', 0, 10))))
      replies[later] = await storm(pool, later, users('v', 0, 7))
    } finally {
      await pool.close()
    }
    const sent = Object.values(replies).reduce((n, r) => n + r.length, 0)
    assert.equal(tally(replies[limited] ?? []).WON, 30)
    assert.deepEqual(tally(replies[later] ?? []), { ISSUE_NOT_STARTED: 7 })

    // Both servers took part of the traffic, and what each counted adds up.
    const scrapes = await Promise.all(servers.map((s) => scrape(s.url)))
    for (const [i, samples] of scrapes.entries()) {
      assert.ok(outcomesIn(samples) > 0, `server ${i + 1} answered some requests`)
    }
    const buckets = new Map<string, number>()
    for (const samples of scrapes) {
      for (const [le, n] of issueBuckets(samples)) buckets.set(le, (buckets.get(le) ?? 0) + n)
    }
    assert.equal(buckets.get('+Inf'), sent)

    const matches = (o: Overview) => {
      const outcomes = (id: number) => o.coupons.find((c) => c.id === id)?.outcomes
      const latency = new Map(
        o.issueLatency.map(([le, n]) => [le === null ? '+Inf' : String(le), n]),
      )
      return (
        o.apiProcesses === 2 &&
        isDeepStrictEqual(outcomes(limited), tally(replies[limited] ?? [])) &&
        isDeepStrictEqual(outcomes(later), tally(replies[later] ?? [])) &&
        [...buckets].every(([le, n]) => latency.get(le) === n)
      )
    }
    // Each server publishes its figures every second: once both have, and both
    // have answered a poll with them, every poll tells the same whole story.
    let inARow = 0
    await waitFor('two polls in a row with every request counted', async () => {
      inARow = matches(await poll(proxy.url)) ? inARow + 1 : 0
      return inARow >= 2
    })
    for (let i = 0; i < 6; i++) {
      const o = await poll(proxy.url)
      assert.ok(matches(o), `poll ${i + 1}: ${JSON.stringify(o)}`)
      assert.equal(o.workersAlive, 2)
    }

    // A server killed drops out: its counts leave with it.
    const [survivor, killed] = servers as [ServerProcess, ServerProcess]
    const killedAt = Date.now()
    killed.signal('SIGKILL')
    await killed.exited
    const alone = await waitFor(
      'the killed server to drop out',
      async () => {
        const o = await poll(survivor.url)
        return o.apiProcesses === 1 ? o : null
      },
      DROP_OUT_MS,
    )
    assert.ok(Date.now() - killedAt < DROP_OUT_MS)
    const own = (await scrape(survivor.url))
      .filter((s) => s.name === 'firstcome_issue_outcomes_total')
      .filter((s) => s.labels.coupon === String(limited) || s.labels.coupon === String(later))
    const counted = alone.coupons
      .flatMap((c) => Object.values(c.outcomes))
      .reduce((a, b) => a + b, 0)
    assert.equal(
      counted,
      own.reduce((n, s) => n + s.value, 0),
      "the survivor's own counts only",
    )
  })
})
