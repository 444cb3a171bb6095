// Runs the test files under test/ with node:test (through tsx), several at once.
//
//   node scripts/test.mjs [--jobs N] [--list] [--test-… node options] [paths…]
//
// Paths filter by prefix: `npm test -- test/unit` runs the files under test/unit.
// Options starting with --test- (--test-name-pattern=…, --test-only) go to every
// file's node. Each file runs in a process of its own, like `node --test` does;
// the runner adds what node:test's own file concurrency lacks: a lane for the
// files that must not run beside each other, a slot number per running file (for
// its ports), a deadline per file, and each file's output printed whole once it
// is done instead of interleaved. See docs/testing.md.
//
// Lanes, from a comment among a file's first lines:
//   (none)                        parallel: up to --jobs files at once (default:
//                                 one more than the CPUs; FIRSTCOME_TEST_JOBS)
//   // test-lane: serial — why    one serial file at a time, beside the parallel
//                                 ones: for files that share something machine-
//                                 wide (podman's image store, a fixed image tag);
//                                 a file using test/helpers/podman.js is serial
//                                 without saying so
//   // test-lane: alone — why     once both lanes are done, one at a time with
//                                 nothing beside it: for files that measure time
//                                 finer than a busy machine keeps it
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const LANE = /^\/\/ test-lane: (\w+)/m
const LANES = ['parallel', 'serial', 'alone']
/** A file still running after this long is killed and counted as failed. */
const FILE_TIMEOUT_MS = Number(process.env.FIRSTCOME_TEST_FILE_TIMEOUT_S ?? 900) * 1000

function testFiles(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) return testFiles(path)
      return name.endsWith('.test.ts') ? [relative(root, path)] : []
    })
}

/** Files driving podman share its image store and the test image's tag. */
const SHARED = /helpers\/podman\.js/

function laneOf(file) {
  const text = readFileSync(join(root, file), 'utf8')
  const lane = LANE.exec(text.slice(0, 4000))?.[1] ?? (SHARED.test(text) ? 'serial' : 'parallel')
  if (!LANES.includes(lane)) throw new Error(`${file}: unknown test-lane "${lane}"`)
  return lane
}

const args = process.argv.slice(2)
const nodeOptions = args.filter((a) => a.startsWith('--test-'))
const list = args.includes('--list')
let jobs = Number(process.env.FIRSTCOME_TEST_JOBS) || availableParallelism() + 1
const filters = []
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--jobs') jobs = Number(args[++i])
  else if (a.startsWith('--jobs=')) jobs = Number(a.slice('--jobs='.length))
  else if (a !== '--list' && !a.startsWith('--test-')) filters.push(a.replace(/^\.\//, ''))
}
if (!(jobs >= 1)) throw new Error('--jobs wants a number ≥ 1')

const files = testFiles(join(root, 'test')).filter(
  (f) => filters.length === 0 || filters.some((x) => f.startsWith(x)),
)
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`)
  process.exit(1)
}
// The longest files first, so that none starts last: end-to-end, then
// integration, then the rest (a file's directory is a fair guess of its length).
const weight = (f) => ['test/e2e/', 'test/integration/'].findIndex((d) => f.startsWith(d)) >>> 0
const byLane = { parallel: [], serial: [], alone: [] }
for (const f of [...files].sort((a, b) => weight(a) - weight(b))) byLane[laneOf(f)].push(f)

if (list) {
  for (const lane of LANES) for (const f of byLane[lane]) console.log(`${lane}\t${f}`)
  process.exit(0)
}

const started = performance.now()
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`
const results = []
const running = new Set()
const freeSlots = Array.from({ length: jobs + 1 }, (_, i) => i)

/** Runs one file; resolves with its result once it has exited. */
function runFile(file, slot) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const child = spawn(
      process.execPath,
      [
        '--conditions=firstcome-source',
        '--import',
        'tsx',
        '--test-reporter=spec',
        ...nodeOptions,
        file,
      ],
      {
        cwd: root,
        env: { ...process.env, FIRSTCOME_TEST_SLOT: String(slot) },
        stdio: ['ignore', 'pipe', 'pipe'],
        // A group of its own: a deadline or ^C ends the file and what it started.
        detached: true,
      },
    )
    running.add(child)
    const out = []
    child.stdout.on('data', (c) => out.push(c))
    child.stderr.on('data', (c) => out.push(c))
    let timedOut = false
    const deadline = setTimeout(() => {
      timedOut = true
      killGroup(child, 'SIGKILL')
    }, FILE_TIMEOUT_MS)
    child.on('close', (code, signal) => {
      clearTimeout(deadline)
      running.delete(child)
      const ms = performance.now() - t0
      const ok = code === 0 && !timedOut
      const why = timedOut ? `killed after ${seconds(FILE_TIMEOUT_MS)}` : signal ? signal : ''
      process.stdout.write(
        `\n── ${ok ? '✔' : '✖'} ${file} (${seconds(ms)}${why ? `, ${why}` : ''})\n` +
          Buffer.concat(out).toString(),
      )
      resolve({ file, ok, ms })
    })
  })
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal)
  } catch {}
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of running) killGroup(child, 'SIGKILL')
    process.exit(130)
  })
}

/** Takes files off `queue`, `width` at a time. */
async function lane(queue, width) {
  await Promise.all(
    Array.from({ length: Math.min(width, queue.length) }, async () => {
      for (let file = queue.shift(); file; file = queue.shift()) {
        const slot = freeSlots.shift()
        results.push(await runFile(file, slot))
        freeSlots.push(slot)
      }
    }),
  )
}

console.log(
  `${files.length} test files: ${byLane.parallel.length} in parallel (${jobs} at once), ` +
    `${byLane.serial.length} in the serial lane, ${byLane.alone.length} alone at the end`,
)
await Promise.all([lane(byLane.parallel, jobs), lane(byLane.serial, 1)])
await lane(byLane.alone, 1)

const failed = results.filter((r) => !r.ok)
const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 5)
console.log(`\n${results.length} test files in ${seconds(performance.now() - started)}`)
console.log(`slowest: ${slowest.map((r) => `${r.file} ${seconds(r.ms)}`).join(', ')}`)
if (failed.length > 0) {
  console.log(`✖ ${failed.length} failed:\n${failed.map((r) => `  ${r.file}`).join('\n')}`)
  process.exit(1)
}
console.log('✔ all passed')
