/**
 * deploy/monitoring/ against a real Prometheus (Debian's `prometheus` package):
 * promtool accepts the configuration and the rules and passes the rules' unit
 * tests; then a Prometheus of the test's own (a temporary directory, a free
 * port, scraping every second with the shipped alert rules) scrapes a real
 * firstcome — Redis mode, two API processes, one worker — under load and
 * through an opening draw, and every
 * Grafana panel's query and every alert's expression is run through its HTTP
 * API: each panel returns data, and every series an alert reads exists.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { ADMIN_TOKEN, createCoupon, type Deployment, deployment } from '../helpers/cockpit.js'
import { redisClient } from '../helpers/redis.js'
import { freePort } from '../helpers/redis-server.js'
import { skipUnless, skipUnlessInstalled } from '../helpers/services.js'
import { httpPool, steadyStorm, storm, tally, users, waitFor } from '../helpers/storm.js'

const run = promisify(execFile)
const MONITORING = fileURLToPath(new URL('../../deploy/monitoring/', import.meta.url))
const skip =
  skipUnlessInstalled('/usr/bin/prometheus', 'prometheus') ||
  (await skipUnless('redis')) ||
  (await skipUnless('postgres'))

interface Target {
  expr: string
  legendFormat?: string
}
interface Panel {
  type: string
  title: string
  targets?: Target[]
}

describe('deploy/monitoring with promtool', { skip }, () => {
  it('promtool checks the configuration and the rules, and the rules pass their tests', async () => {
    const opts = { cwd: MONITORING }
    await run('promtool', ['check', 'config', 'prometheus.yml'], opts)
    await run('promtool', ['check', 'rules', 'alerts.yml'], opts)
    const { stdout } = await run('promtool', ['test', 'rules', 'alerts.test.yml'], opts)
    assert.match(stdout, /SUCCESS/)
  })

  it('every alert has a unit test that fires it and one that does not', () => {
    const rules = readFileSync(join(MONITORING, 'alerts.yml'), 'utf8')
    const tests = readFileSync(join(MONITORING, 'alerts.test.yml'), 'utf8')
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1] as string)
    assert.ok(alerts.length >= 8)
    for (const alert of alerts) {
      const cases = [
        ...tests.matchAll(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:(\\s*\\[\\])?`, 'g')),
      ]
      assert.ok(
        cases.some((c) => !c[1]),
        `${alert}: no case where it fires`,
      )
      assert.ok(
        cases.some((c) => c[1]),
        `${alert}: no case where it stays quiet`,
      )
    }
  })
})

describe('a real Prometheus scraping a real firstcome', { skip }, () => {
  const cluster = deployment({ apiProcesses: 2, workers: 1 })
  const dir = mkdtempSync(join(tmpdir(), 'firstcome-prometheus-'))
  let d: Deployment
  let prometheus: ChildProcess | null = null
  let promUrl = ''
  let log = ''

  async function query(expr: string): Promise<unknown[]> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = (await res.json()) as {
      status: string
      error?: string
      data?: { result: unknown[] }
    }
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`)
    return body.data?.result ?? []
  }

  before(async () => {
    d = await cluster.start()
    const port = await freePort()
    promUrl = `http://127.0.0.1:${port}`
    const hostOf = (url: string) => url.replace(/^http:\/\//, '')
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        `rule_files: ['${join(MONITORING, 'alerts.yml')}']`,
        'scrape_configs:',
        `  - { job_name: firstcome-api, static_configs: [{ targets: ['${hostOf(d.server.url)}'] }] }`,
        `  - { job_name: firstcome-worker, static_configs: [{ targets: ['${hostOf(d.workers[0]?.metricsUrl ?? '')}'] }] }`,
        '',
      ].join('\n'),
    )
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    prometheus.stderr?.on('data', (c: Buffer) => {
      if (log.length < 100_000) log += c.toString()
    })
    await waitFor('prometheus to be ready', async () => {
      const res = await fetch(`${promUrl}/-/ready`).catch(() => null)
      return res?.status === 200
    })
  })
  after(async () => {
    if (prometheus && prometheus.exitCode === null && prometheus.signalCode === null) {
      const exited = once(prometheus, 'exit')
      prometheus.kill('SIGKILL')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })

  it('every Grafana panel and every alert expression returns data', async (t) => {
    const couponId = await createCoupon(d.server.url, { totalQuantity: 1_000_000 })
    // A webhook endpoint that takes everything, so its series exist.
    const receiver = createServer((req, res) => {
      req.resume()
      req.on('end', () => res.writeHead(200).end())
    })
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
    t.after(() => new Promise((r) => receiver.close(r)))
    const hook = await fetch(`${d.server.url}/v1/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`,
        events: ['coupon.issued'],
      }),
    })
    assert.equal(hook.status, 201)
    const pool = httpPool(d.server.url, 20)
    // An opening draw: entries, then the draw, so the draw's series exist.
    const drawCoupon = await createCoupon(d.server.url, {
      totalQuantity: 5,
      issueStart: new Date(Date.now() - 1000),
      drawAt: new Date(Date.now() + 4000),
    })
    const entries = await storm(pool, drawCoupon, users('entrant-', 0, 20))
    assert.deepEqual(
      tally(entries, (a) => String(a.status)),
      { '202': 20 },
    )
    const load = steadyStorm(pool, couponId, 'p', 10)
    try {
      await waitFor('the draw recorded', async () => {
        const res = await fetch(`${d.server.url}/v1/coupons/${drawCoupon}/draw`)
        await res.body?.cancel()
        return res.status === 200
      })
      // A dead letter, so the dead-letter series exists as it would after one.
      const redis = redisClient()
      await redis.xadd(`${d.prefix}{c${couponId}}:stream`, '*', 'junk', '1')
      redis.disconnect()
      await waitFor(
        'ten seconds of scrapes of both jobs',
        async () => {
          const [api, worker] = await Promise.all([
            query('count_over_time(up{job="firstcome-api"}[1m]) >= 10'),
            query('count_over_time(up{job="firstcome-worker"}[1m]) >= 10'),
          ])
          const dead = await query('firstcome_wins_dead_lettered_total')
          return api.length > 0 && worker.length > 0 && dead.length > 0
        },
        60_000,
        500,
      ).catch((err) => {
        throw new Error(`${String(err)}\nprometheus log:\n${log.slice(-3000)}`)
      })
      assert.equal((await query('up{job=~"firstcome-.*"} == 0')).length, 0, 'a target is down')

      const dashboard = JSON.parse(
        readFileSync(join(MONITORING, 'grafana/dashboards/firstcome.json'), 'utf8'),
      ) as { panels: Panel[] }
      const blank: string[] = []
      let queries = 0
      for (const panel of dashboard.panels) {
        if (panel.type === 'row') continue
        assert.ok(panel.targets?.length, `${panel.title}: no query`)
        for (const target of panel.targets ?? []) {
          queries++
          if ((await query(target.expr)).length === 0) blank.push(`${panel.title}: ${target.expr}`)
        }
      }
      t.diagnostic(`${queries} panel queries`)
      assert.deepEqual(blank, [], 'panels without data')

      const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; query: string; health: string }[] }[] }
      }
      const alerts = rules.data.groups.flatMap((g) => g.rules)
      assert.ok(alerts.length >= 8)
      for (const alert of alerts) {
        await query(alert.query) // valid, whether it fires or not
        for (const name of new Set(
          alert.query.match(/\b(?:firstcome_\w+|http_\w+|nodejs_\w+|up)\b(?=[{[ )]|$)/g),
        )) {
          const series = await query(`{__name__="${name}"}`)
          assert.ok(series.length > 0, `${alert.name}: no ${name} series`)
        }
      }
      await waitFor('every rule evaluated', async () => {
        const again = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof rules
        return again.data.groups.flatMap((g) => g.rules).every((r) => r.health === 'ok')
      })
      // The dead letter fires its alert, live; nothing else is wrong.
      await waitFor('the dead-letter alert', async () => {
        const firing = await query('ALERTS{alertstate="firing"}')
        return firing.length > 0
      })
      const firing = (await query('ALERTS{alertstate="firing"}')) as {
        metric: Record<string, string>
      }[]
      assert.deepEqual(
        firing.map((a) => [a.metric.alertname, a.metric.coupon]),
        [['FirstcomeDeadLetters', String(couponId)]],
      )
    } finally {
      await load.stop()
      await pool.close()
    }
  })
})
