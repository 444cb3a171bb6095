/**
 * A TCP proxy that adds a one-way delay in each direction, to put a network
 * between the parts on one machine (where the kernel offers no `netem`). Each
 * chunk read from one side is written to the other at its arrival time plus the
 * delay, in the order it arrived: a queue per direction, drained when its head
 * is due.
 *
 * The event loop's timers count whole milliseconds, which would make a 0.5 ms
 * delay 1 to 2 ms. The wake-ups come instead from a small thread of the
 * process's own (the metronome) sleeping in `Atomics.wait`, whose timeout has
 * microsecond resolution, then posting the loop a message: no spinning. The
 * model: one wake-up releases every chunk due within a window after it (a
 * quarter of the delay, at most 0.5 ms), so a chunk leaves at most that early,
 * and a steady stream wakes the proxy about once per window, not once per chunk;
 * a feedback loop moves each wake-up earlier or later than the head's due time
 * by the error the released chunks have shown, so the mean time in the proxy is
 * the delay. A chunk's own error is within the window either way on a quiet
 * machine (0.5 ms: ±0.125 ms); on a loaded one some wake-ups come milliseconds
 * late, as everything else's do. Byte order per direction holds: due times rise
 * with arrival, and a wake-up releases a prefix of the queue. `delayStats`
 * reports the time the chunks actually spent in the proxy.
 *
 * Run as a process of its own, so its CPU is measured apart from what it sits in
 * front of and a busy server does not delay its timers:
 *   node delay-proxy.js --delay-ms 1 [--precise] --target 127.0.0.1:6379 [--target …]
 * prints `delay proxy 127.0.0.1:<port> -> <host>:<port>` per target, once listening.
 */
import { spawn } from 'node:child_process'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import { processCpuMs } from './kernel.js'
import { nodeEntry } from './node-entry.js'
import { ConfigError } from './service.js'

export interface Delay {
  /** client → target, ms */
  up: number
  /** target → client, ms */
  down: number
}

/** How often a proxy process reports the time chunks spent in it, ms. */
const STATS_MS = 250

/** Pauses a side once this many bytes wait in its direction's queue. */
const HIGH_WATER = 4 * 1024 * 1024

/**
 * The release window, ms: one wake-up releases every chunk due within this much
 * of it, so a steady stream wakes the proxy about once per window rather than
 * once per chunk (each wake-up costs a thread switch and a write per
 * connection). A quarter of the delay, at most 0.5 ms: the jitter it allows.
 */
function windowMs(delayMs: number): number {
  return Math.min(0.5, delayMs / 4)
}

/** A monotonic clock that reads the same in every thread of the process, ms. */
function clockMs(): number {
  const [s, ns] = process.hrtime()
  return s * 1000 + ns / 1e6
}

/**
 * The metronome thread: sleeps in `Atomics.wait`, whose timeout has microsecond
 * resolution where the event loop's timers have milliseconds, until the time the
 * main thread last asked for, then posts it a message, which wakes its event loop
 * at once. Cell 0 counts requests (bumped on each new time), slot 1 holds the
 * time asked for (clockMs), 0 when none.
 */
const METRONOME = `
const { parentPort, workerData } = require('node:worker_threads')
const seq = new Int32Array(workerData, 0, 1)
const at = new Float64Array(workerData, 8, 1)
const clockMs = () => { const [s, ns] = process.hrtime(); return s * 1000 + ns / 1e6 }
for (;;) {
  const n = Atomics.load(seq, 0)
  const due = at[0]
  const wait = due === 0 ? Infinity : due - clockMs()
  if (wait > 0) { Atomics.wait(seq, 0, n, wait); continue }
  at[0] = 0
  parentPort.postMessage(n)
  Atomics.wait(seq, 0, n)
}
`

/** Wakes the event loop at a time to the tens of microseconds, without spinning. */
class Metronome {
  readonly #seq: Int32Array
  readonly #at: Float64Array
  readonly #worker: Worker
  /** until the thread runs (tens of ms after it is made), wake-ups come from a timer */
  online = false
  readonly ready: Promise<void>

  constructor(onTick: () => void) {
    const shared = new SharedArrayBuffer(16)
    this.#seq = new Int32Array(shared, 0, 1)
    this.#at = new Float64Array(shared, 8, 1)
    // No loader hooks: the metronome is plain JavaScript.
    this.#worker = new Worker(METRONOME, { eval: true, workerData: shared, execArgv: [] })
    this.#worker.on('message', onTick)
    this.ready = new Promise((resolve) => {
      this.#worker.once('online', () => {
        this.online = true
        this.#worker.unref()
        resolve()
      })
      // Without the thread, the millisecond timers go on serving.
      this.#worker.once('error', () => {
        this.online = false
        this.#worker.unref()
        resolve()
      })
    })
  }

  /** One call of `onTick` at `atMs` (clockMs), replacing any time asked for before. */
  wakeAt(atMs: number) {
    this.#at[0] = Math.max(atMs, 1e-9)
    Atomics.add(this.#seq, 0, 1)
    Atomics.notify(this.#seq, 0)
  }
}

/**
 * Every chunk in flight with one delay, in arrival order: with the delay the same
 * for all, arrival order is due order, so one queue and one wake-up serve every
 * connection (a timer per connection costs far more CPU under a storm).
 *
 * By default the wake-ups come from the metronome thread. One wake-up releases
 * the chunks due within the window after it, so a chunk leaves at most a window
 * early; how late depends on the machine. A feedback loop keeps the mean on
 * time: it asks for each wake-up earlier or later than the head's due time by
 * the error the released chunks have been showing. With `precise`, the event
 * loop spins (setImmediate) through the last millisecond instead (the former
 * way, kept to compare).
 */
class Timeline {
  readonly #queue: { at: number; stream: DelayedStream; chunk: Buffer | null }[] = []
  #head = 0
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null
  /** a wake-up is asked for */
  #asked = false
  /** how much before the head's due time to ask for the wake-up, ms (the loop's output) */
  #leadMs = 0
  readonly #windowMs: number
  #metronome: Metronome | null = null
  /** chunks released, and the sum, least and most of their time in the queue, ms */
  readonly stats = { chunks: 0, sumMs: 0, minMs: Number.POSITIVE_INFINITY, maxMs: 0 }

  readonly delayMs: number

  constructor(delayMs: number) {
    this.delayMs = delayMs
    this.#windowMs = windowMs(delayMs)
  }

  /** Starts the metronome thread ahead of the first chunk; resolves once it runs. */
  prepare(): Promise<void> {
    if (precise) return Promise.resolve()
    this.#metronome ??= new Metronome(this.#drain)
    return this.#metronome.ready
  }

  push(stream: DelayedStream, chunk: Buffer | null) {
    this.#queue.push({ at: clockMs() + this.delayMs, stream, chunk })
    if (!this.#timer && !this.#asked) this.#schedule()
  }

  #schedule() {
    const next = this.#queue[this.#head]
    if (!next) return
    void this.prepare()
    if (this.#metronome?.online) {
      this.#asked = true
      // Never before the head can leave, or the wake-ups would spin.
      this.#metronome.wakeAt(next.at - Math.min(this.#leadMs, this.#windowMs))
      return
    }
    const wait = next.at - clockMs()
    this.#timer =
      precise && wait < 1 ? setImmediate(this.#drain) : setTimeout(this.#drain, Math.floor(wait))
  }

  readonly #drain = () => {
    const byMetronome = this.#asked
    this.#timer = null
    this.#asked = false
    const now = clockMs()
    const until = precise ? now : now + this.#windowMs
    // The chunks of one connection due together leave in one write.
    const corked = new Set<DelayedStream>()
    const stats = this.stats
    let released = 0
    let lateMs = 0
    for (;;) {
      const next = this.#queue[this.#head]
      if (!next || next.at > until) break
      this.#head++
      released++
      lateMs += now - next.at
      const waited = now - (next.at - this.delayMs)
      stats.chunks++
      stats.sumMs += waited
      if (waited < stats.minMs) stats.minMs = waited
      if (waited > stats.maxMs) stats.maxMs = waited
      if (!corked.has(next.stream)) {
        corked.add(next.stream)
        next.stream.to.cork()
      }
      next.stream.deliver(next.chunk)
    }
    for (const s of corked) s.to.uncork()
    if (byMetronome && released > 0) {
      // Late on average: ask earlier; early: later. A small step, so one
      // stalled wake-up does not swing it; bounded both ways.
      const lead = this.#leadMs + lateMs / released / 8
      this.#leadMs = Math.max(-this.#windowMs, Math.min(this.#windowMs, lead))
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    } else if (this.#head > 4096) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
    this.#schedule()
  }
}

/**
 * Spin (setImmediate) through the last millisecond before a chunk is due instead
 * of waking on the metronome thread: a core's worth of CPU while anything is in
 * flight, for no better precision. Kept to compare the two.
 */
let precise = false
const timelines = new Map<number, Timeline>()

function timeline(delayMs: number): Timeline {
  let t = timelines.get(delayMs)
  if (!t) {
    t = new Timeline(delayMs)
    timelines.set(delayMs, t)
  }
  return t
}

/**
 * Resolves once a proxy with each of these one-way delays releases chunks on
 * time (its metronome thread runs); before, they leave on millisecond timers.
 */
export async function delaysReady(delay: Delay): Promise<void> {
  await Promise.all(
    [delay.up, delay.down].filter((ms) => ms > 0).map((ms) => timeline(ms).prepare()),
  )
}

/**
 * How long the chunks through this process's proxies with `delayMs` actually
 * waited, from their arrival to their release: a count, the sum, least and most
 * (ms), and the mean (NaN before the first).
 */
export function delayStats(delayMs: number): {
  chunks: number
  sumMs: number
  minMs: number
  maxMs: number
  meanMs: number
} {
  const s = timelines.get(delayMs)?.stats ?? {
    chunks: 0,
    sumMs: 0,
    minMs: Number.POSITIVE_INFINITY,
    maxMs: 0,
  }
  return { ...s, meanMs: s.sumMs / s.chunks }
}

/** One direction of one connection: bytes from `from` reach `to` after `delayMs`. */
class DelayedStream {
  #queued = 0
  #cancelled = false
  readonly #timeline: Timeline | null

  readonly from: Socket
  readonly to: Socket

  constructor(from: Socket, to: Socket, delayMs: number) {
    this.from = from
    this.to = to
    this.#timeline = delayMs > 0 ? timeline(delayMs) : null
    void this.#timeline?.prepare()
    from.on('data', (chunk: Buffer) => this.#push(chunk))
    from.once('end', () => this.#push(null))
  }

  #push(chunk: Buffer | null) {
    if (!this.#timeline) {
      this.#write(chunk)
      return
    }
    if (chunk) {
      this.#queued += chunk.length
      if (this.#queued > HIGH_WATER) this.from.pause()
    }
    this.#timeline.push(this, chunk)
  }

  deliver(chunk: Buffer | null) {
    if (this.#cancelled) return
    if (chunk) {
      this.#queued -= chunk.length
      if (this.#queued <= HIGH_WATER && this.from.isPaused()) this.from.resume()
    }
    this.#write(chunk)
  }

  #write(chunk: Buffer | null) {
    if (this.to.destroyed) return
    if (chunk) this.to.write(chunk)
    else this.to.end()
  }

  cancel() {
    this.#cancelled = true
  }
}

/**
 * Joins `client` to a new connection to the target with the delay each way;
 * `track` sees both sockets (to destroy them on a cut). Either side closing
 * closes the other.
 */
export function delayedPipe(
  client: Socket,
  target: { host: string; port: number },
  delay: Delay,
  track?: (socket: Socket, closed: boolean) => void,
): void {
  const upstream = createConnection(target)
  client.setNoDelay(true)
  upstream.setNoDelay(true)
  const streams = [
    new DelayedStream(client, upstream, delay.up),
    new DelayedStream(upstream, client, delay.down),
  ]
  for (const s of [client, upstream]) {
    track?.(s, false)
    s.on('error', () => {})
    s.once('close', () => {
      track?.(s, true)
      for (const d of streams) d.cancel()
      client.destroy()
      upstream.destroy()
    })
  }
}

/** Listens on a free loopback port; every connection is piped to the target with the delay. */
export async function startDelayProxy(
  target: { host: string; port: number },
  delay: Delay,
  port = 0,
): Promise<{ server: Server; port: number }> {
  await delaysReady(delay)
  const server = createServer((client) => delayedPipe(client, target, delay))
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  return { server, port: typeof address === 'object' && address ? address.port : port }
}

/** `--delay-ms`: a number of ms from 0 to 1000, fractions allowed. */
export function parseDelayMs(raw: string): number {
  const n = Number(raw)
  if (!/^\d+(\.\d+)?$/.test(raw) || n > 1000) {
    throw new ConfigError(`--delay-ms must be a number of ms from 0 to 1000, got "${raw}"`)
  }
  return n
}

/** `host:port` → its parts */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(text)
  if (!m?.[1] || !m[2]) throw new Error(`expected host:port, got "${text}"`)
  return { host: m[1], port: Number(m[2]) }
}

export interface DelayProxyProcess {
  pid: number
  /** the local port in front of each target, in the order given */
  ports: number[]
  /** CPU the proxy process has used so far, ms (null off Linux) */
  cpuMs(): number | null
  /**
   * The chunks released so far and their total time in the proxy, ms, as the
   * proxy last reported them (every STATS_MS): the delay it actually applied.
   */
  timeInProxy(): { chunks: number; sumMs: number }
  stop(): Promise<void>
}

/** Starts a proxy process with the delay each way in front of each target. */
export async function spawnDelayProxy(
  delayMs: number,
  targets: readonly { host: string; port: number }[],
  options: { precise?: boolean } = {},
): Promise<DelayProxyProcess> {
  const entry = nodeEntry('./delay-proxy')
  const args = [...entry.execArgv, entry.path, '--delay-ms', String(delayMs)]
  if (options.precise) args.push('--precise')
  for (const t of targets) args.push('--target', `${t.host}:${t.port}`)
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((done) => child.once('exit', () => done()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  let output = ''
  let inProxy = { chunks: 0, sumMs: 0 }
  let pending = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8')
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      const m = /^delay stats (\d+) ([\d.]+)$/.exec(line)
      if (m) inProxy = { chunks: Number(m[1]), sumMs: Number(m[2]) }
    }
  })
  const ports = await new Promise<number[]>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`delay proxy did not start: ${output}`)), 30_000)
    const check = () => {
      const found = [...output.matchAll(/delay proxy 127\.0\.0\.1:(\d+) ->/g)]
      if (found.length < targets.length) return
      clearTimeout(timer)
      done(found.map((m) => Number(m[1])))
    }
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
      check()
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
    })
    exited.then(() => {
      clearTimeout(timer)
      fail(new Error(`delay proxy exited: ${output}`))
    })
  }).catch(async (err: unknown) => {
    await stop()
    throw err
  })
  return {
    pid: child.pid ?? 0,
    ports,
    cpuMs: () => processCpuMs(child.pid ?? 0),
    timeInProxy: () => inProxy,
    stop,
  }
}

/** The mean time in the proxy of the chunks released between two `timeInProxy()` readings, ms. */
export function meanTimeInProxy(
  before: { chunks: number; sumMs: number },
  after: { chunks: number; sumMs: number },
): number | null {
  const chunks = after.chunks - before.chunks
  return chunks > 0 ? (after.sumMs - before.sumMs) / chunks : null
}

/** What a service's environment looks like through the proxy, and the proxy itself. */
export interface DelayedEnv {
  env: NodeJS.ProcessEnv
  proxy: DelayProxyProcess
  /** what is behind the delay, e.g. "Redis and postgres" */
  covers: string
}

/**
 * Starts one proxy process with `delayMs` each way in front of the environment's
 * Redis (REDIS_URL) and server database (DATABASE_URL, PostgreSQL or MySQL), and
 * returns the environment rewritten to go through it. A cluster cannot be put
 * behind it: its clients learn every node's own address from the cluster.
 */
export async function delayEnv(env: NodeJS.ProcessEnv, delayMs: number): Promise<DelayedEnv> {
  if (env.REDIS_CLUSTER_NODES?.trim()) {
    throw new Error(
      'a delay cannot be put in front of a Redis Cluster: its clients connect to the addresses the nodes announce',
    )
  }
  const rewrites: { key: 'REDIS_URL' | 'DATABASE_URL'; url: URL; what: string }[] = []
  const redisUrl = env.REDIS_URL?.trim()
  if (redisUrl) {
    const url = new URL(redisUrl)
    url.port ||= '6379'
    rewrites.push({ key: 'REDIS_URL', url, what: 'Redis' })
  }
  const dbUrl = env.DATABASE_URL?.trim()
  if (dbUrl && /^(postgres|postgresql|mysql):/.test(dbUrl)) {
    const url = new URL(dbUrl)
    url.port ||= url.protocol === 'mysql:' ? '3306' : '5432'
    rewrites.push({ key: 'DATABASE_URL', url, what: url.protocol.replace(':', '') })
  }
  if (rewrites.length === 0)
    throw new Error('nothing to delay: no REDIS_URL and no server database')
  const proxy = await spawnDelayProxy(
    delayMs,
    rewrites.map(({ url }) => ({ host: url.hostname, port: Number(url.port) })),
  )
  const delayed = { ...env }
  for (const [i, { key, url }] of rewrites.entries()) {
    const through = new URL(url)
    through.hostname = '127.0.0.1'
    through.port = String(proxy.ports[i])
    delayed[key] = through.toString()
  }
  return { env: delayed, proxy, covers: rewrites.map((r) => r.what).join(' and ') }
}

async function main() {
  const { values } = parseArgs({
    options: {
      'delay-ms': { type: 'string', default: '1' },
      target: { type: 'string', multiple: true, default: [] },
      precise: { type: 'boolean', default: false },
    },
  })
  precise = values.precise ?? false
  const ms = parseDelayMs(values['delay-ms'] ?? '1')
  for (const t of values.target ?? []) {
    const target = parseHostPort(t)
    const { port } = await startDelayProxy(target, { up: ms, down: ms })
    process.stdout.write(`delay proxy 127.0.0.1:${port} -> ${target.host}:${target.port}\n`)
  }
  // How long the chunks have spent in the proxy so far, for spawnDelayProxy;
  // and no proxy left behind by a parent that died without stopping it.
  let reported = 0
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0)
    let chunks = 0
    let sumMs = 0
    for (const t of timelines.values()) {
      chunks += t.stats.chunks
      sumMs += t.stats.sumMs
    }
    if (chunks === reported) return
    reported = chunks
    process.stdout.write(`delay stats ${chunks} ${sumMs.toFixed(3)}\n`)
  }, STATS_MS).unref()
  process.on('SIGTERM', () => process.exit(0))
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
