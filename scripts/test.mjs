// Runs the test files under test/ with node:test (through tsx), several at once.
//
//   node scripts/test.mjs [--check] [--jobs N] [--list] [--test-… node options] [paths…]
//
// --check runs `npm run check` (type-check and lint) as the serial lane's first
// job, beside the files instead of before them (`npm test` does); it fails the
// run like a failed file.
//
// Paths filter by prefix: `npm test -- test/unit` runs the files under test/unit.
// Options starting with --test- (--test-name-pattern=…, --test-only) go to every
// file's node. Each file runs in a process of its own, like `node --test` does;
// the runner adds what node:test's own file concurrency lacks: a lane for the
// files that must not run beside each other, a slot number per running file (for
// its ports), a deadline per file, and each file's output printed whole once it
// is done instead of interleaved. See docs/testing.md.
//
// A file's process ends once its tests and hooks are done (--test-force-exit),
// not when the last timer or socket it holds lets go: a driver's timer left by
// a cut connection, or a keep-alive socket, held some files tens of seconds
// after their last test. Anything the file started and left running (its
// process group) is killed when it ends.
//
// Lanes, from a comment among a file's first lines:
//   (none)                        parallel: up to --jobs files at once (default:
//                                 one more than the CPUs, and one more file
//                                 outside test/e2e/ while the CPUs sit idle;
//                                 FIRSTCOME_TEST_JOBS or --jobs: that many, fixed)
//   // test-lane: serial — why    one serial file at a time, beside the parallel
//                                 ones: for files that share something machine-
//                                 wide (podman's image store, a fixed image tag);
//                                 a file using test/helpers/podman.js is serial
//                                 without saying so
//   // test-lane: alone — why     once both lanes are done, one at a time with
//                                 nothing beside it: for files that measure time
//                                 finer than a busy machine keeps it
// And `// test-order: first — why` among a file's first lines starts it before
// the others of its lane: for the few files that take minutes, so that none of
// them is what the run waits for at its end.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { availableParallelism, cpus } from 'node:os'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
/** What runs the TypeScript files (see the file). */
const TS_SOURCES = new URL('ts-sources.mjs', import.meta.url).href
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
const check = args.includes('--check')
let jobs = Number(process.env.FIRSTCOME_TEST_JOBS) || 0
const filters = []
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--jobs') jobs = Number(args[++i])
  else if (a.startsWith('--jobs=')) jobs = Number(a.slice('--jobs='.length))
  else if (a !== '--list' && a !== '--check' && !a.startsWith('--test-'))
    filters.push(a.replace(/^\.\//, ''))
}
// A number given is kept to; else one file more while the CPUs idle (see below).
const extraJobs = jobs ? 0 : 1
jobs ||= availableParallelism() + 1
if (!(jobs >= 1)) throw new Error('--jobs wants a number ≥ 1')

const files = testFiles(join(root, 'test')).filter(
  (f) => filters.length === 0 || filters.some((x) => f.startsWith(x)),
)
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`)
  process.exit(1)
}
// The longest files first, so that none starts last: end-to-end, then
// integration, then contract, then the rest, the unit files, which take a
// second or less and fill the end (a file's directory is a fair guess of its
// length).
const E2E = 'test/e2e/'
const FIRST = /^\/\/ test-order: first/m
// Each file's header read once, not at every comparison of the sort.
const weights = new Map(
  files.map((f) => [
    f,
    FIRST.test(readFileSync(join(root, f), 'utf8').slice(0, 4000))
      ? -1
      : [E2E, 'test/integration/', 'test/contract/'].findIndex((d) => f.startsWith(d)) >>> 0,
  ]),
)
const byLane = { parallel: [], serial: [], alone: [] }
for (const f of [...files].sort((a, b) => weights.get(a) - weights.get(b)))
  byLane[laneOf(f)].push(f)

if (list) {
  for (const lane of LANES) for (const f of byLane[lane]) console.log(`${lane}\t${f}`)
  process.exit(0)
}

const started = performance.now()
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`
const results = []
const running = new Set()
const freeSlots = Array.from({ length: jobs + extraJobs + 1 }, (_, i) => i)
const CHECK = 'npm run check'

/** Runs one file (or the check); resolves with its result once it has exited. */
function runFile(file, slot) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const npm = process.env.npm_execpath
    const [command, argv] =
      file !== CHECK
        ? [
            process.execPath,
            [
              '--conditions=firstcome-source',
              '--import',
              TS_SOURCES,
              '--test-reporter=spec',
              // Ends once its tests and hooks are done, not when its last timer or
              // socket lets go (see the file's header).
              '--test-force-exit',
              ...nodeOptions,
              file,
            ],
          ]
        : npm
          ? [process.execPath, [npm, 'run', 'check']]
          : ['npm', ['run', 'check']]
    const child = spawn(command, argv, {
      cwd: root,
      env: { ...process.env, FIRSTCOME_TEST_SLOT: String(slot) },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A group of its own: a deadline or ^C ends the file and what it started.
      detached: true,
    })
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
      // Whatever the file started and left running ends with it.
      killGroup(child, 'SIGKILL')
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

/** Idle and total CPU time of every core so far (ms). */
function cpuTimes() {
  let idle = 0
  let total = 0
  for (const { times } of cpus()) {
    idle += times.idle
    total += times.user + times.nice + times.sys + times.irq + times.idle
  }
  return { idle, total }
}

/** Over this much of the CPUs idle for a while, one more file may start. */
const IDLE_SHARE = 0.4
const IDLE_SAMPLE_MS = 3000

/**
 * The parallel lane: `width` files at a time (one more once the serial lane is
 * done: its slot joins this lane), and `extra` more while the CPUs sit idle.
 * Much of the suite waits (on servers it started, on a database, on a deadline
 * it provokes), so `width` files leave the cores idle for stretches. An extra
 * file starts only after IDLE_SAMPLE_MS in which the CPUs were at least
 * IDLE_SHARE idle, one at a time, and never an end-to-end file: those start
 * several processes each and turn busy at once, which a machine already running
 * `width` of them does not absorb.
 */
function parallelLane(queue, width, extra) {
  const active = new Set()
  let done
  const finished = new Promise((resolve) => {
    done = resolve
  })
  const start = (file) => {
    const slot = freeSlots.shift()
    const run = runFile(file, slot).then((r) => {
      results.push(r)
      freeSlots.push(slot)
      active.delete(run)
      fill()
    })
    active.add(run)
  }
  const fill = () => {
    while (queue.length > 0 && active.size < width) start(queue.shift())
    if (queue.length === 0 && active.size === 0) done()
  }
  let last = cpuTimes()
  const sampler =
    extra > 0 &&
    setInterval(() => {
      const now = cpuTimes()
      const idle = (now.idle - last.idle) / Math.max(1, now.total - last.total)
      last = now
      if (idle < IDLE_SHARE || active.size >= width + extra) return
      const i = queue.findIndex((f) => !f.startsWith(E2E))
      if (i >= 0) start(queue.splice(i, 1)[0])
    }, IDLE_SAMPLE_MS)
  fill()
  return {
    finished: finished.then(() => {
      if (sampler) clearInterval(sampler)
    }),
    /** One file more at a time from now on. */
    widen() {
      width++
      fill()
    },
  }
}

console.log(
  `${files.length} test files: ${byLane.parallel.length} in parallel (${jobs} at once` +
    `${extraJobs ? `, ${jobs + extraJobs} while the CPUs idle` : ''}), ` +
    `${byLane.serial.length} in the serial lane, ${byLane.alone.length} alone at the end` +
    `${check ? `; ${CHECK} first in the serial lane` : ''}`,
)
if (check) byLane.serial.unshift(CHECK)
const parallel = parallelLane(byLane.parallel, jobs, extraJobs)
await Promise.all([parallel.finished, lane(byLane.serial, 1).then(() => parallel.widen())])
await lane(byLane.alone, 1)

const failed = results.filter((r) => !r.ok)
const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 10)
const counted = results.length - (check ? 1 : 0)
console.log(
  `\n${counted} test files${check ? ' and the check' : ''} in ${seconds(performance.now() - started)}`,
)
console.log(`slowest: ${slowest.map((r) => `${r.file} ${seconds(r.ms)}`).join(', ')}`)
if (failed.length > 0) {
  console.log(`✖ ${failed.length} failed:\n${failed.map((r) => `  ${r.file}`).join('\n')}`)
  process.exit(1)
}
console.log('✔ all passed')
