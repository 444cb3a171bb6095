// test-lane: serial — builds and runs the shared test image in podman
/**
 * The image, run as users run it: built from the Dockerfile (on the local
 * stand-in of node:24-bookworm-slim), on the Node CI tests (.nvmrc), holding
 * production modules only, serving the embedded default with its demo coupon,
 * stopping cleanly on SIGTERM and keeping its wins in the data volume across
 * containers, and declaring no volume of its own.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import {
  buildImages,
  podman,
  publishedPort,
  ROOT,
  skipUnlessPodman,
  TEST_IMAGE,
} from '../helpers/podman.js'
import { waitFor } from '../helpers/storm.js'

const skip = await skipUnlessPodman()
const tag = `fc-e2e-${process.pid}`
const volume = `${tag}-data`
const GRACE_S = 20

async function startEmbedded(name: string): Promise<string> {
  await podman([
    'run',
    '-d',
    '--name',
    name,
    '-p',
    '127.0.0.1::8080',
    '-v',
    `${volume}:/app/data`,
    TEST_IMAGE,
  ])
  const base = `http://127.0.0.1:${await publishedPort(name, 8080)}`
  await waitFor(
    `${name} to be ready`,
    async () => (await fetch(`${base}/readyz`)).status === 200,
    120_000,
    250,
  )
  return base
}

function issue(base: string, userId: string) {
  return fetch(`${base}/v1/coupons/1/issues`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  })
}

describe('the container image', { skip }, () => {
  before(buildImages)
  after(async () => {
    await podman(['rm', '-f', '-t', '0', `${tag}-a`, `${tag}-b`], { allowFail: true })
    await podman(['volume', 'rm', '-f', volume], { allowFail: true })
  })

  it('runs the tested Node, holds production dependencies only, as a non-root user', async () => {
    const lock = JSON.parse(readFileSync(`${ROOT}package-lock.json`, 'utf8')) as {
      packages: Record<string, { dev?: boolean }>
    }
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => path.startsWith('node_modules/') && p.dev === true)
      .map(([path]) => path)
    const { stdout: version } = await podman([
      'run',
      '--rm',
      '--entrypoint',
      'node',
      TEST_IMAGE,
      '-p',
      'process.versions.node',
    ])
    const tested = readFileSync(`${ROOT}.nvmrc`, 'utf8').trim().replace(/^v/, '')
    assert.equal(version.trim().split('.')[0], tested.split('.')[0], 'the Node major CI tests')
    const volumes = await podman([
      'image',
      'inspect',
      '--format',
      '{{json .Config.Volumes}}',
      TEST_IMAGE,
    ])
    assert.match(volumes.stdout.trim(), /^(null|\{\})$/, 'no VOLUME: no anonymous volumes')
    const list = `const fs=require('fs');const out=[];const walk=(d)=>{for(const n of fs.readdirSync(d)){if(n==='.bin')continue;const p=d+'/'+n;out.push(p);if(fs.existsSync(p+'/node_modules'))walk(p+'/node_modules');if(n.startsWith('@'))for(const m of fs.readdirSync(p)){out.push(p+'/'+m);if(fs.existsSync(p+'/'+m+'/node_modules'))walk(p+'/'+m+'/node_modules')}}};walk('node_modules');console.log(JSON.stringify({uid:process.getuid(),modules:out}))`
    const { stdout } = await podman(['run', '--rm', '--entrypoint', 'node', TEST_IMAGE, '-e', list])
    const { uid, modules } = JSON.parse(stdout) as { uid: number; modules: string[] }
    assert.notEqual(uid, 0, 'the server runs as a non-root user')
    const present = new Set(modules)
    for (const tool of ['typescript', 'tsx', '@biomejs', '@biomejs/biome', 'esbuild']) {
      assert.ok(!present.has(`node_modules/${tool}`), `${tool} is in the runtime image`)
    }
    const leaked = devOnly.filter((p) => present.has(p))
    assert.deepEqual(leaked, [], 'dev-only packages in the runtime image')
    // SQLite is Node's own: no native driver to build or ship.
    assert.ok(!present.has('node_modules/better-sqlite3'), 'no native SQLite driver')
    assert.ok(present.has('node_modules/fastify'))
  })

  it('runs `bench` and `worker` from the same entrypoint', async () => {
    // The bench starts its own `firstcome serve` (a fresh SQLite file) in the container.
    const bench = await podman(
      [
        'run',
        '--rm',
        TEST_IMAGE,
        'bench',
        '--scenario',
        'win',
        '-c',
        '20',
        '-d',
        '2',
        '--no-progress',
      ],
      { timeoutMs: 300_000 },
    )
    assert.match(bench.stdout, /Invariants \(all pass\)/)
    const worker = await podman(['run', '--rm', TEST_IMAGE, 'worker'], { allowFail: true })
    assert.notEqual(worker.code, 0)
    assert.match(`${worker.stdout}${worker.stderr}`, /needs Redis/)
  })

  it('serves the demo coupon, stops on SIGTERM with exit 0 in the grace period, keeps the win', async () => {
    const first = `${tag}-a`
    let base = await startEmbedded(first)
    const health = await podman(['healthcheck', 'run', first], { allowFail: true })
    assert.equal(health.code, 0, `HEALTHCHECK: ${health.stdout}${health.stderr}`)

    const won = await issue(base, 'container-user-1')
    assert.equal(won.status, 201)
    const { rank } = (await won.json()) as { rank: number }
    const state = await fetch(`${base}/v1/coupons/1/issues/container-user-1`)
    assert.equal(((await state.json()) as { state: string }).state, 'ISSUED')

    const started = performance.now()
    await podman(['stop', '-t', String(GRACE_S), first])
    const stoppedIn = (performance.now() - started) / 1000
    const exit = await podman(['inspect', '--format', '{{.State.ExitCode}}', first])
    assert.equal(exit.stdout.trim(), '0', 'the server exits 0 on SIGTERM')
    assert.ok(stoppedIn < GRACE_S, `stopped in ${stoppedIn.toFixed(1)} s, within ${GRACE_S} s`)
    const logs = await podman(['logs', first])
    assert.match(`${logs.stdout}${logs.stderr}`, /demo coupon {2}#1/)
    assert.match(`${logs.stdout}${logs.stderr}`, /shutting down/)

    base = await startEmbedded(`${tag}-b`)
    const again = await fetch(`${base}/v1/coupons/1/issues/container-user-1`)
    assert.equal(again.status, 200)
    const kept = (await again.json()) as { userId: string; rank: number; state: string }
    assert.deepEqual([kept.userId, kept.rank, kept.state], ['container-user-1', rank, 'ISSUED'])
    const twice = await issue(base, 'container-user-1')
    assert.equal(twice.status, 409)
    assert.equal(((await twice.json()) as { code: string }).code, 'ALREADY_ISSUED')
    const coupons = await fetch(`${base}/v1/coupons/1/stats`)
    assert.equal(((await coupons.json()) as { won: number }).won, 1, 'one coupon, no second demo')
  })
})
