/**
 * API processes with wrong clocks (libfaketime) on one Redis: one true, one 3 s
 * behind, one 3 s ahead, as on hosts without NTP. A storm runs through all three
 * across a short window, from before it opens until after it closes by more than
 * the skew. The window is Redis's clock's to judge: judged by the test's own
 * (true) clock, no win is answered for a request sent after the window closed
 * or answered before it opened, no refusal says "not started" for a request sent
 * once it had opened or "ended" for one answered before it closed, and the
 * database's date_issued lie inside the window. The skewed processes say so:
 * their offset gauge, a warning in their log, the dashboard's clock health.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Pool } from 'undici'
import { createDatabaseUrl, dropDatabaseUrl } from '../helpers/databases.js'
import { assertInvariants } from '../helpers/invariants.js'
import { scrapedValue } from '../helpers/metrics.js'
import {
  LIBFAKETIME,
  type ServerProcess,
  type ServiceProcess,
  startServer,
  startWorkerProcess,
  stopAll,
} from '../helpers/processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless, skipUnlessInstalled } from '../helpers/services.js'
import { httpPool, type IssueReply, issueOnce, waitDrained, winsOf } from '../helpers/storm.js'
import { waitFor } from '../helpers/wait.js'

const TOKEN = 'clock-skew-admin-token'
const SKEW_MS = 3000
/** from the coupon's creation to its start: every process has loaded it by then */
const LEAD_MS = 2500
const WINDOW_MS = 3000
/** requests in flight per server, all along the storm */
const LANES = 6

interface Sent {
  server: string
  reply: IssueReply
  /** the test's (true) clock when the request was sent, and when its answer was read */
  sentAt: number
  answeredAt: number
}

const skip =
  (await skipUnless('redis')) || skipUnlessInstalled(LIBFAKETIME || 'libfaketime.so.1', 'faketime')

describe('API processes with wrong clocks on one Redis', { skip }, () => {
  const prefix = uniquePrefix()
  let databaseUrl = ''
  const procs: ServiceProcess[] = []
  const servers: Record<string, ServerProcess> = {}

  before(async () => {
    databaseUrl = await createDatabaseUrl('sqlite')
    const env = { REDIS_URL, REDIS_KEY_PREFIX: prefix }
    const start = async (name: string, faketime?: string) => {
      const server = await startServer({
        databaseUrl,
        adminToken: TOKEN,
        noWorker: true,
        env,
        ...(faketime ? { faketime } : {}),
      })
      procs.push(server)
      servers[name] = server
    }
    await start('true')
    await Promise.all([
      start('behind', `-${SKEW_MS / 1000}s`),
      start('ahead', `+${SKEW_MS / 1000}s`),
    ])
    procs.push(await startWorkerProcess({ DATABASE_URL: databaseUrl, ...env, LOG_LEVEL: 'warn' }))
  })
  after(async () => {
    await stopAll(procs)
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })

  it('each skewed process measures its offset, warns, and shows on the dashboard', async () => {
    const offset = (name: string) =>
      scrapedValue(servers[name]?.url ?? '', 'firstcome_clock_offset_seconds')
    const skewed = (name: string) =>
      scrapedValue(servers[name]?.url ?? '', 'firstcome_clock_skewed')
    // Redis's clock minus the process's: +3 s for the one behind.
    const behind = await offset('behind')
    const ahead = await offset('ahead')
    assert.ok(Math.abs(behind - SKEW_MS / 1000) < 0.25, `behind: offset ${behind} s`)
    assert.ok(Math.abs(ahead + SKEW_MS / 1000) < 0.25, `ahead: offset ${ahead} s`)
    assert.ok(Math.abs(await offset('true')) < 0.25)
    assert.equal(await skewed('behind'), 1)
    assert.equal(await skewed('ahead'), 1)
    assert.equal(await skewed('true'), 0)
    await servers.behind?.waitForOutput(
      /"event":"clock\.skew".*"offsetMs":29\d\d|"event":"clock\.skew".*"offsetMs":30\d\d/,
    )
    await servers.ahead?.waitForOutput(/"event":"clock\.skew".*"offsetMs":-(29|30)\d\d/)
    assert.doesNotMatch(servers.true?.output() ?? '', /clock\.skew/)
    // The dashboard, asked of the true process, sees the fleet's worst.
    const overview = await waitFor('the skewed processes on the dashboard', async () => {
      const res = await fetch(`${servers.true?.url}/v1/admin/overview`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
      const body = (await res.json()) as {
        apiProcesses: number
        health: { clock: boolean }
        clockOffsetSeconds: number
      }
      return body.apiProcesses === 3 ? body : null
    })
    assert.equal(overview.health.clock, false)
    assert.ok(Math.abs(Math.abs(overview.clockOffsetSeconds) - SKEW_MS / 1000) < 0.25)
  })

  it('judges the window by one clock: no win outside it, no wrong refusal, whichever process answers', async () => {
    const issueStart = Date.now() + LEAD_MS
    const issueEnd = issueStart + WINDOW_MS
    const created = await fetch(`${servers.true?.url}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'clock skew',
        totalQuantity: null,
        discountAmount: 1,
        minAvailableAmount: 1,
        issueStart: new Date(issueStart).toISOString(),
        issueEnd: new Date(issueEnd).toISOString(),
      }),
    })
    assert.equal(created.status, 201, await created.clone().text())
    const couponId = ((await created.json()) as { id: number }).id

    // From now (before the start) until the end plus the skew and a margin.
    const stopAt = issueEnd + SKEW_MS + 1000
    const pools: Pool[] = []
    const sent: Sent[] = []
    try {
      await Promise.all(
        Object.entries(servers).map(async ([server, proc]) => {
          const pool = httpPool(proc.url, LANES)
          pools.push(pool)
          let next = 0
          await Promise.all(
            Array.from({ length: LANES }, async () => {
              while (Date.now() < stopAt) {
                const sentAt = Date.now()
                const reply = await issueOnce(pool, couponId, `${server}-${next++}`)
                sent.push({ server, reply, sentAt, answeredAt: Date.now() })
              }
            }),
          )
        }),
      )
    } finally {
      await Promise.all(pools.map((p) => p.close()))
    }

    const wrong = new Map<string, string[]>()
    const note = (what: string, s: Sent) => {
      const list = wrong.get(what) ?? []
      list.push(
        `${s.server} sent ${s.sentAt - issueStart} ms, answered ${s.answeredAt - issueStart} ms after the start`,
      )
      wrong.set(what, list)
    }
    const byServer: Record<string, Record<string, number>> = {}
    for (const s of sent) {
      const { status, code } = s.reply
      const kind = status === 201 ? 'won' : `${status} ${code}`
      byServer[s.server] ??= {}
      const counts = byServer[s.server] as Record<string, number>
      counts[kind] = (counts[kind] ?? 0) + 1
      if (status === 201) {
        if (s.sentAt > issueEnd) note('won, sent after the end', s)
        if (s.answeredAt < issueStart) note('won, answered before the start', s)
      } else if (code === 'ISSUE_NOT_STARTED') {
        if (s.sentAt >= issueStart) note('not started, sent after the start', s)
      } else if (code === 'ISSUE_ENDED') {
        if (s.answeredAt < issueEnd) note('ended, answered before the end', s)
      } else {
        note(`answered ${status} ${code}`, s)
      }
    }
    const summary = [...wrong].map(([what, list]) => `${list.length} × ${what}, e.g. ${list[0]}`)
    assert.deepEqual(summary, [], `answers by server: ${JSON.stringify(byServer)}`)
    // Every process answered wins, and refusals on both sides of the window.
    for (const server of Object.keys(servers)) {
      const counts = byServer[server] ?? {}
      assert.ok((counts.won ?? 0) > 0, `${server}: ${JSON.stringify(counts)}`)
      assert.ok((counts['409 ISSUE_NOT_STARTED'] ?? 0) > 0, `${server}: ${JSON.stringify(counts)}`)
      assert.ok((counts['409 ISSUE_ENDED'] ?? 0) > 0, `${server}: ${JSON.stringify(counts)}`)
    }

    const wins = winsOf(sent.map((s) => s.reply))
    const pool = httpPool(servers.true?.url ?? '', 1)
    try {
      await waitDrained(pool, couponId, 60_000)
    } finally {
      await pool.close()
    }
    // Every answered win is a row with its rank, and every date_issued is inside
    // [issueStart, issueEnd): the database shows what the gate decided.
    const view = await assertInvariants(databaseUrl, couponId, wins)
    assert.equal(view.rows, wins.size)
  })

  it("runs a draw at drawAt by the gate's clock: the process ahead does not close the entries early", async () => {
    const issueStart = Date.now() + LEAD_MS
    // More than the skew after the start: drawn by the process ahead, the
    // entries would close a second into the window.
    const drawAt = issueStart + SKEW_MS + 1000
    const created = await fetch(`${servers.true?.url}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: 'clock skew draw',
        totalQuantity: 50,
        discountAmount: 1,
        minAvailableAmount: 1,
        issueStart: new Date(issueStart).toISOString(),
        issueEnd: new Date(drawAt + 2000).toISOString(),
        drawAt: new Date(drawAt).toISOString(),
      }),
    })
    assert.equal(created.status, 201, await created.clone().text())
    const couponId = ((await created.json()) as { id: number }).id
    // Entries through the true process and the one behind, from the start until after drawAt.
    const sent: Sent[] = []
    const stopAt = drawAt + 500
    const pools = ['true', 'behind'].map((name) => httpPool(servers[name]?.url ?? '', LANES))
    try {
      await sleepUntil(issueStart + 100)
      await Promise.all(
        pools.flatMap((pool, p) =>
          Array.from({ length: LANES }, async (_, lane) => {
            for (let i = 0; Date.now() < stopAt; i++) {
              const sentAt = Date.now()
              const reply = await issueOnce(pool, couponId, `draw-${p}-${lane}-${i}`)
              sent.push({ server: String(p), reply, sentAt, answeredAt: Date.now() })
            }
          }),
        ),
      )
    } finally {
      await Promise.all(pools.map((pool) => pool.close()))
    }
    const early = sent.filter((s) => s.answeredAt < drawAt)
    const refused = early.filter((s) => s.reply.status !== 202)
    assert.ok(early.length > 0)
    assert.deepEqual(
      refused
        .slice(0, 3)
        .map(
          (s) =>
            `${s.reply.status} ${s.reply.code}, answered ${s.answeredAt - drawAt} ms from drawAt`,
        ),
      [],
      `${refused.length} of the ${early.length} entries answered before drawAt were refused`,
    )
  })
})

function sleepUntil(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))
}
