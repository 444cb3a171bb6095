/**
 * A redis-server of a test's own, on a free loopback port with a temporary
 * directory, for tests that kill, restart or wipe Redis (never the shared one).
 * `kill()` is a SIGKILL; `start()` brings it back on the same port and directory
 * (so an AOF is replayed); `stop()` kills it and removes the directory.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { IN_CI } from './services.js'

export interface RedisServerOptions {
  /** `--appendonly yes --appendfsync always`: every acknowledged write is on disk */
  aofAlways?: boolean
  /**
   * `--appendonly yes --appendfsync everysec` (Redis's own default for an AOF):
   * a power loss takes the last second or so; `aof()` cuts the file back.
   */
  aofEverysec?: boolean
  /** more redis-server arguments, e.g. `['--replicaof', '127.0.0.1', '6379']` */
  args?: string[]
}

/** The AOF being appended to (Redis 7's multi-part AOF: the incr file in appendonlydir). */
export interface AppendOnlyFile {
  /** its size now, bytes */
  size(): number
  /**
   * Cuts it back to `bytes`, as a power loss does to what the page cache had not
   * written: only while the server is down.
   */
  truncate(bytes: number): void
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** the running process's pid, or null while it is down */
  pid(): number | null
  start(): Promise<void>
  /** SIGKILL: no shutdown, no final save */
  kill(): Promise<void>
  /** Kills it (if running) and removes its directory. */
  stop(): Promise<void>
  /** A plain client for the test's own reads and writes. */
  client(): Redis
  /** With an AOF: the file being appended to now. */
  aof(): AppendOnlyFile
}

/**
 * `false` when redis-server can be started here; otherwise why the test skips
 * (`purpose`: what the test needs it for).
 */
export function skipUnlessRedisServer(
  purpose = 'to kill and restart a Redis of the test own',
): string | false {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.status === 0) return false
  if (IN_CI) return false
  return `redis-server is not installed (needed ${purpose})`
}

/**
 * Ports a test hands to a process it starts (redis-server, a cluster node,
 * Prometheus) are taken below the kernel's ephemeral range (32768 and up), where
 * no outgoing connection of a storm can hold one when a killed server is
 * restarted on its port; and each file the test runner runs at once has a block
 * of its own (FIRSTCOME_TEST_SLOT), so files in parallel never pick the same
 * one. A cluster node's bus port (+10000) stays below the ephemeral range too.
 * FIRSTCOME_TEST_PORTS=<first>-<last> confines every pick to that range instead
 * (a machine shared with other runs, each with a range of its own).
 */
const PORT_BLOCK = 500
const FIRST_PORT = 10_000
/** Blocks 0..15 for the runner's slots; the last for a file run on its own. */
const BLOCKS = 17
const slot = Number(process.env.FIRSTCOME_TEST_SLOT)
const block = Number.isInteger(slot) && slot >= 0 && slot < BLOCKS - 1 ? slot : BLOCKS - 1
/** Where this process's next pick starts: anywhere in its block, so that two runs side by side rarely meet. */
let nextPort = FIRST_PORT + block * PORT_BLOCK + Math.floor(Math.random() * PORT_BLOCK)

/** Whether a loopback port can be listened on now. */
export function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

const range = /^(\d+)-(\d+)$/.exec(process.env.FIRSTCOME_TEST_PORTS ?? '')
const [rangeStart, rangeSize] = range
  ? [Number(range[1]), Number(range[2]) - Number(range[1]) + 1]
  : [FIRST_PORT + block * PORT_BLOCK, PORT_BLOCK]
if (range) nextPort = rangeStart

/** A loopback port nothing listens on, from this file's block (see above). */
export async function freePort(): Promise<number> {
  const start = rangeStart
  for (let tries = 0; tries < rangeSize; tries++) {
    const port = start + ((nextPort - start) % rangeSize)
    nextPort = port + 1
    if (await bindable(port)) return port
  }
  throw new Error(`no free port in ${start}..${start + rangeSize - 1}`)
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

async function waitUntilServing(port: number, child: ChildProcess, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`)
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    })
    probe.on('error', () => {}) // refused until it listens
    try {
      await probe.connect() // ready check included: waits out LOADING
      await probe.ping()
      return
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not come up`)
    } finally {
      probe.disconnect()
    }
    await sleep(20)
  }
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'firstcome-redis-'))
  const port = await freePort()
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--logfile',
    join(dir, 'redis.log'),
    ...(options.aofAlways
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : options.aofEverysec
        ? ['--appendonly', 'yes', '--appendfsync', 'everysec']
        : ['--appendonly', 'no']),
    ...(options.args ?? []),
  ]
  let child: ChildProcess | null = null
  const clients: Redis[] = []

  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    dir,
    pid: () => child?.pid ?? null,
    async start() {
      if (child) throw new Error('redis-server is already running')
      const started = spawn('redis-server', args, { stdio: 'ignore' })
      child = started
      started.once('exit', () => {
        if (child === started) child = null
      })
      await waitUntilServing(port, started)
    },
    async kill() {
      const running = child
      if (!running) return
      running.kill('SIGKILL')
      await exited(running)
      child = null
    },
    async stop() {
      for (const c of clients.splice(0)) c.disconnect()
      await server.kill()
      rmSync(dir, { recursive: true, force: true })
    },
    client() {
      const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 })
      c.on('error', () => {}) // it is killed on purpose
      clients.push(c)
      return c
    },
    aof() {
      const aofDir = join(dir, 'appendonlydir')
      // The manifest names each part; "type i" is the one being appended to.
      const manifest = readFileSync(join(aofDir, 'appendonly.aof.manifest'), 'utf8')
      const incr = /^file (\S+) seq \d+ type i$/m.exec(manifest)?.[1]
      if (!incr) throw new Error(`no incr file in the AOF manifest:\n${manifest}`)
      const path = join(aofDir, incr)
      return {
        size: () => statSync(path).size,
        truncate(bytes) {
          if (child) throw new Error('cut the AOF back only while redis-server is down')
          truncateSync(path, bytes)
        },
      }
    },
  }
  try {
    await server.start()
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}
