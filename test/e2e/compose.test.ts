// test-lane: serial — builds and runs the shared test image in podman
/**
 * deploy/compose.yaml brought up as users do (docker-compose, here through
 * podman's Docker-compatible socket): a storm through the front proxy wins
 * exactly the coupons there are, each persisted once in the stack's PostgreSQL;
 * an API and a worker container killed with SIGKILL mid-storm lose no answered
 * win; the API's banner prints PUBLIC_URL and not the admin token; `down` takes
 * under 15 s and leaves only the two data volumes, which `down -v` removes.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ADMIN_TOKEN, createCoupon } from '../helpers/app.js'
import {
  buildImages,
  podman,
  podmanEnv,
  type RunOptions,
  run,
  skipUnlessPodman,
  TEST_IMAGE,
} from '../helpers/podman.js'
import { freePort } from '../helpers/redis-server.js'
import {
  assertWinsPersisted,
  checkRowsAt,
  httpPool,
  oneTo,
  soldOutStats,
  sortedRanks,
  steadyStorm,
  storm,
  tally,
  twiceShuffled,
  users,
  waitDrained,
  winsOf,
} from '../helpers/storm.js'
import { waitFor } from '../helpers/wait.js'

const skip = await skipUnlessPodman(true)
const project = `fce2e${process.pid}`
const dir = mkdtempSync(join(tmpdir(), 'fc-compose-'))
const socket = join(dir, 'podman.sock')
const env = {
  ...podmanEnv(socket),
  FIRSTCOME_COMPOSE_PROJECT: project,
  COMPOSE_HTTP_TIMEOUT: '600',
}
const POSTGRES_PASSWORD = 'e2e-postgres-password'
const LANES = 64

function compose(args: string[], options: RunOptions = {}) {
  const base = ['-f', 'deploy/compose.yaml', '-p', project, '--env-file', join(dir, 'env')]
  return run('docker-compose', [...base, ...args], { env, timeoutMs: 600_000, ...options })
}

async function volumes(): Promise<Set<string>> {
  const { stdout } = await podman(['volume', 'ls', '--format', '{{.Name}}'])
  return new Set(stdout.split('\n').filter(Boolean))
}

describe('the compose stack', { skip }, () => {
  let url = ''
  let databaseUrl = ''
  let up = false
  let volumesBefore = new Set<string>()
  const publicUrl = 'http://coupons.test:18080'

  before(async () => {
    await buildImages()
    volumesBefore = await volumes()
    const [http, api1, api2, pg] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ]
    writeFileSync(
      join(dir, 'env'),
      [
        `FIRSTCOME_IMAGE=${TEST_IMAGE}`,
        `ADMIN_TOKEN=${ADMIN_TOKEN}`,
        `POSTGRES_PASSWORD=${POSTGRES_PASSWORD}`,
        `FIRSTCOME_HTTP_PORT=127.0.0.1:${http}`,
        `API1_PORT=${api1}`,
        `API2_PORT=${api2}`,
        `POSTGRES_PORT=${pg}`,
        // A killed worker's pending wins are taken over after this long.
        'WORKER_CLAIM_IDLE_MS=3000',
        'LOG_LEVEL=warn',
        `PUBLIC_URL=${publicUrl}`,
      ].join('\n'),
    )
    url = `http://127.0.0.1:${http}`
    databaseUrl = `postgres://firstcome:${POSTGRES_PASSWORD}@127.0.0.1:${pg}/firstcome`
    await run('scripts/podman-service.sh', ['start'], { env })
    up = true
    await compose(['up', '-d', '--no-build'])
  })

  after(async () => {
    if (up) await compose(['down', '-v', '-t', '5'], { allowFail: true })
    await run('scripts/podman-service.sh', ['stop'], { env, allowFail: true })
    rmSync(dir, { recursive: true, force: true })
  })

  it('a storm through the proxy: exact winners, every win persisted once', async () => {
    const quantity = 300
    const couponId = await createCoupon({ url }, { totalQuantity: quantity })
    const pool = httpPool(url, 200)
    try {
      const replies = await storm(pool, couponId, twiceShuffled(users('storm-', 0, 1500)))
      const wins = winsOf(replies)
      assert.equal(wins.size, quantity, JSON.stringify(tally(replies)))
      assert.deepEqual(sortedRanks(wins.values()), oneTo(quantity))
      for (const r of replies) {
        assert.ok(
          r.status === 201 ||
            (r.status === 409 && ['SOLD_OUT', 'ALREADY_ISSUED'].includes(r.code ?? '')),
          `unexpected answer ${r.status} ${r.code}`,
        )
      }
      assert.deepEqual(await waitDrained(pool, couponId, 60_000), soldOutStats(couponId, quantity))
      const view = await checkRowsAt(databaseUrl, couponId)
      assert.equal(view.rows, quantity)
      assertWinsPersisted(wins, view)
    } finally {
      await pool.close()
    }
  })

  it('SIGKILL of an API and a worker container mid-storm loses no answered win', async (t) => {
    const couponId = await createCoupon({ url }, { totalQuantity: 1_000_000 })
    const pool = httpPool(url, LANES)
    try {
      const load = steadyStorm(pool, couponId, 'kill-', LANES)
      await waitFor(
        '500 wins before the kill',
        () => load.replies.filter((r) => r.status === 201).length >= 500,
        60_000,
      )
      await compose(['kill', '-s', 'SIGKILL', 'api1', 'worker1'])
      const before = load.replies.length
      // Long enough for the proxy to take api1 out and the storm to go on without it.
      await waitFor(
        '2,000 answers after the kill',
        () => load.replies.length >= before + 2000,
        60_000,
      )
      const replies = await load.stop()
      // A request in flight on api1 when it died has no answer: HAProxy closes
      // the client's connection (it never resends a request it sent). Whether it
      // won is the database's to say, below; it was not answered.
      const unanswered = replies.filter((r) => r.status === null)
      assert.ok(unanswered.length <= LANES, `${unanswered.length} unanswered, more than in flight`)
      const wins = winsOf(replies.filter((r) => r.status !== null))
      const kinds = tally(replies)
      t.diagnostic(`answers: ${JSON.stringify(kinds)}`)
      for (const kind of Object.keys(kinds)) {
        assert.ok(
          ['201', 'no answer', '502 null', '503 null', '503 UNAVAILABLE'].includes(kind),
          JSON.stringify(kinds),
        )
      }
      const stats = await waitDrained(pool, couponId, 120_000)
      assert.ok(stats.won >= wins.size)
      const view = await checkRowsAt(databaseUrl, couponId)
      assertWinsPersisted(wins, view)
      assert.equal(view.rows, stats.won, 'every decided win is persisted once')
    } finally {
      await pool.close()
    }
  })

  it("prints PUBLIC_URL in the API's banner, and not the admin token", async () => {
    const { stdout, stderr } = await compose(['logs', '--no-color', 'api1', 'api2'])
    const logs = `${stdout}${stderr}`
    assert.match(logs, new RegExp(`dashboard +${publicUrl}/ `))
    assert.match(logs, new RegExp(`API docs +${publicUrl}/docs`))
    assert.ok(!logs.includes(ADMIN_TOKEN), 'the admin token is in the logs')
  })

  it('`down` takes under 15 s and leaves only the data volumes; `down -v` those too', async () => {
    const started = performance.now()
    await compose(['down'])
    up = false
    const seconds = (performance.now() - started) / 1000
    assert.ok(seconds < 15, `down took ${seconds.toFixed(1)} s`)
    const added = async () => [...(await volumes())].filter((v) => !volumesBefore.has(v)).sort()
    assert.deepEqual(await added(), [`${project}_postgres-data`, `${project}_redis-data`])
    await compose(['down', '-v'])
    assert.deepEqual(await added(), [])
  })
})
