// The draw's cost in one process (docs/benchmarks.md, "The opening draw"):
// `node --import tsx scripts/bench-draw.ts [entrants] [quantity]`.
// Times computing the pseudonyms (HMAC per entrant), sorting them, and the draw
// itself over the sorted list (validation + digest + the winners).
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { drawWinners, pseudonymOf } from '../src/draw/shuffle.js'

const entrants = Number(process.argv[2] ?? 1_000_000)
const quantity = Number(process.argv[3] ?? 500)
const seed = randomBytes(32)

/** Wall time, and CPU time (on a shared machine the figure that drifts less). */
function timed<T>(label: string, run: () => T): T {
  const cpu = process.cpuUsage()
  const start = performance.now()
  const result = run()
  const wall = performance.now() - start
  const used = process.cpuUsage(cpu)
  const cpuMs = (used.user + used.system) / 1000
  process.stdout.write(
    `${label.padEnd(34)} wall ${wall.toFixed(0).padStart(6)} ms   cpu ${cpuMs.toFixed(0).padStart(6)} ms\n`,
  )
  return result
}

const userIds = Array.from({ length: entrants }, (_, i) => `user-${i}`)
process.stdout.write(`${entrants} entrants, ${quantity} coupons, node ${process.version}\n`)
const pseudonyms = timed('pseudonyms (HMAC-SHA256 each)', () =>
  userIds.map((u) => pseudonymOf(seed, u)),
)
const sorted = timed('sort', () => pseudonyms.sort())
const result = timed(`digest + ${quantity} winners`, () => drawWinners(seed, sorted, quantity))
timed('digest + every entrant shuffled', () => drawWinners(seed, sorted, entrants))
process.stdout.write(
  `winners: ${result.winners.length}, rss ${process.memoryUsage().rss >> 20} MiB\n`,
)
