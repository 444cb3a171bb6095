/**
 * A TCP proxy that adds a one-way delay in each direction, to put a network
 * between the parts on one machine (where the kernel offers no `netem`). Each
 * chunk read from one side is written to the other at its arrival time plus the
 * delay, in the order it arrived: a queue per direction, drained by one timer
 * set for its head. A timer alone may fire early (the event loop's clock is
 * cached per turn), so a chunk is written only once the monotonic clock says its
 * time has come; less than a millisecond away, the queue is retried on the next
 * turn instead.
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
import { processCpuMs } from './kernel.js'
import { nodeEntry } from './node-entry.js'
import { ConfigError } from './service.js'

export interface Delay {
  /** client → target, ms */
  up: number
  /** target → client, ms */
  down: number
}

/** Pauses a side once this many bytes wait in its direction's queue. */
const HIGH_WATER = 4 * 1024 * 1024

/**
 * Every chunk in flight with one delay, in arrival order: with the delay the same
 * for all, arrival order is due order, so one queue and one timer serve every
 * connection (a timer per connection costs far more CPU under a storm).
 */
class Timeline {
  readonly #queue: { at: number; stream: DelayedStream; chunk: Buffer | null }[] = []
  #head = 0
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null

  constructor(readonly delayMs: number) {}

  push(stream: DelayedStream, chunk: Buffer | null) {
    this.#queue.push({ at: performance.now() + this.delayMs, stream, chunk })
    if (!this.#timer) this.#schedule()
  }

  #schedule() {
    const next = this.#queue[this.#head]
    if (!next) return
    const wait = next.at - performance.now()
    this.#timer =
      precise && wait < 1 ? setImmediate(this.#drain) : setTimeout(this.#drain, Math.floor(wait))
  }

  readonly #drain = () => {
    this.#timer = null
    const now = performance.now()
    // The chunks of one connection due together leave in one write.
    const corked = new Set<DelayedStream>()
    for (;;) {
      const next = this.#queue[this.#head]
      if (!next || next.at > now) break
      this.#head++
      if (!corked.has(next.stream)) {
        corked.add(next.stream)
        next.stream.to.cork()
      }
      next.stream.deliver(next.chunk)
    }
    for (const s of corked) s.to.uncork()
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
 * of waiting on a timer: sub-millisecond precision for a core's worth of CPU
 * while anything is in flight. Off, a chunk waits for the millisecond timer
 * after its due time: at least the delay, at most about a millisecond more.
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

/** One direction of one connection: bytes from `from` reach `to` after `delayMs`. */
class DelayedStream {
  #queued = 0
  #cancelled = false
  readonly #timeline: Timeline | null

  constructor(
    readonly from: Socket,
    readonly to: Socket,
    delayMs: number,
  ) {
    this.#timeline = delayMs > 0 ? timeline(delayMs) : null
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
  return { pid: child.pid ?? 0, ports, cpuMs: () => processCpuMs(child.pid ?? 0), stop }
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
  process.on('SIGTERM', () => process.exit(0))
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  })
}
