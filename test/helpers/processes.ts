/**
 * The real `firstcome` command in child processes (`node …FROM_SOURCES src/main.ts`),
 * for tests that kill -9, signal or restart a server or a worker, or run several
 * at once. Only what the service needs is in its environment: nothing from the
 * test's (REDIS_URL, …) leaks in. A server listens on a port of its own choosing
 * (PORT=0) on 127.0.0.1, read from the banner it prints once listening.
 */
import { spawn } from 'node:child_process'
import { globSync } from 'node:fs'
import { after, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { SERVICE_TOKEN } from './app.js'
import { createDatabaseUrl, dropDatabaseUrl } from './databases.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/**
 * Node options that run the sources: Node's type stripping with the hook of
 * scripts/ts-sources.mjs, and the package.json
 * "exports" condition under which the workspace packages resolve to their sources
 * (`firstcome bench` loads @firstcome/bench, which loads `firstcome/bench-api`).
 */
export const FROM_SOURCES = [
  '--conditions=firstcome-source',
  '--import',
  new URL('../../scripts/ts-sources.mjs', import.meta.url).href,
]
const MAX_OUTPUT = 1_000_000
const SERVER_START_TIMEOUT_MS = 30_000

export interface ProcessExit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ServiceProcess {
  readonly pid: number
  /** stdout and stderr so far (the first MiB) */
  output(): string
  /** stdout alone so far (the first MiB) */
  stdout(): string
  /** Resolves with the exit code (null when killed by a signal) and signal. */
  readonly exited: Promise<ProcessExit>
  /** Resolves with the first match in the output; rejects if the process exits first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>
  /** Sends the signal if the process still runs. */
  signal(signal: NodeJS.Signals): void
}

export interface SpawnOptions {
  /** `ulimit -n`: the most descriptors the process may hold open */
  descriptorLimit?: number
  /**
   * a wrong wall clock, under libfaketime (LD_PRELOAD, FAKETIME): '-3s' runs 3 s
   * behind, '+3s' ahead. The monotonic clock stays true (DONT_FAKE_MONOTONIC), as
   * on a host whose date is wrong, so timers keep working. (Not the `faketime`
   * command: it forks, and a SIGKILL would leave the server running.)
   */
  faketime?: string
}

/** libfaketime, from the apt package `faketime` (.ci/run installs it); '' when missing. */
export const LIBFAKETIME =
  globSync('/usr/lib/*/faketime/libfaketime.so.1')[0] ??
  globSync('/usr/lib*/faketime/libfaketime.so.1')[0] ??
  ''

/** Spawns `firstcome <args>` with the given environment added to a minimal one. */
export function spawnFirstcome(
  args: string[],
  env: Record<string, string>,
  options: SpawnOptions = {},
): ServiceProcess {
  const node = [process.execPath, ...FROM_SOURCES, 'src/main.ts', ...args]
  const [command, ...argv] =
    options.descriptorLimit === undefined
      ? node
      : ['sh', '-c', `ulimit -n ${options.descriptorLimit} && exec "$@"`, 'sh', ...node]
  const child = spawn(command as string, argv, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      ...(options.faketime === undefined
        ? {}
        : { LD_PRELOAD: LIBFAKETIME, FAKETIME: options.faketime, DONT_FAKE_MONOTONIC: '1' }),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error('could not spawn firstcome')
  let output = ''
  let stdout = ''
  const listeners = new Set<() => void>()
  const append = (toStdout: boolean) => (chunk: Buffer) => {
    const text = chunk.toString('utf8')
    if (output.length < MAX_OUTPUT) output += text
    if (toStdout && stdout.length < MAX_OUTPUT) stdout += text
    for (const l of listeners) l()
  }
  child.stdout?.on('data', append(true))
  child.stderr?.on('data', append(false))
  const exited = new Promise<ProcessExit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return {
    pid: child.pid,
    output: () => output,
    stdout: () => stdout,
    exited,
    waitForOutput(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output)
          if (!match) return
          finish()
          resolve(match)
        }
        const timer = setTimeout(() => {
          finish()
          reject(new Error(`no ${pattern} after ${timeoutMs} ms; output:\n${output.slice(-4000)}`))
        }, timeoutMs)
        const finish = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        exited.then(() => {
          if (pattern.test(output)) return
          finish()
          reject(new Error(`exited before ${pattern}; output:\n${output.slice(-4000)}`))
        })
        listeners.add(check)
        check()
      })
    },
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
  }
}

/** SIGKILLs the children (test teardown), frozen ones too, and waits for their exit. */
export async function stopAll(children: Iterable<ServiceProcess>): Promise<void> {
  const all = [...children]
  for (const p of all) {
    p.signal('SIGCONT')
    p.signal('SIGKILL')
  }
  await Promise.all(all.map((p) => p.exited))
}

/** Spawns `firstcome <args>` and resolves once its output matches `ready`. */
async function startFirstcome(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  timeoutMs?: number,
  options?: SpawnOptions,
): Promise<{ proc: ServiceProcess; match: RegExpMatchArray }> {
  const proc = spawnFirstcome(args, env, options)
  try {
    return { proc, match: await proc.waitForOutput(ready, timeoutMs) }
  } catch (err) {
    await stopAll([proc])
    throw err
  }
}

export interface WorkerProcess extends ServiceProcess {
  /** its /metrics, /healthz and /readyz server (METRICS_PORT, a free one by default) */
  metricsUrl: string
}

/** `firstcome worker`, resolved once it reports that it runs. */
export async function startWorkerProcess(
  env: Record<string, string>,
  timeoutMs?: number,
): Promise<WorkerProcess> {
  const { proc, match } = await startFirstcome(
    ['worker'],
    { METRICS_PORT: '0', HOST: '127.0.0.1', ...env },
    /firstcome worker running.*metrics on (http:\/\/[^\s]+)\/metrics/,
    timeoutMs,
  )
  return Object.assign(proc, { metricsUrl: match[1] ?? '' })
}

export interface ServerProcess extends ServiceProcess {
  url: string
}

export interface ServerOptions extends SpawnOptions {
  databaseUrl: string
  /** ADMIN_TOKEN; omitted → the server generates one */
  adminToken?: string
  /** `serve --no-worker`: the stream worker runs in processes of its own */
  noWorker?: boolean
  env?: Record<string, string>
  /** after `serve`, e.g. `--no-worker` */
  args?: string[]
  /** how long it may take to listen and be ready (default 30 s) */
  timeoutMs?: number
}

/** `firstcome serve`, resolved once it listens and /readyz answers 200. */
export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  const env: Record<string, string> = {
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: options.databaseUrl,
    LOG_LEVEL: 'warn',
    // As in startApp: no shedding unless a test asks for it.
    QUEUE_TIMEOUT_MS: '0',
    ...(options.adminToken === undefined ? {} : { ADMIN_TOKEN: options.adminToken }),
    SERVICE_TOKEN,
    ...options.env,
  }
  const banner = /listening on (http:\/\/[^\s]+)/
  const args = ['serve', ...(options.noWorker ? ['--no-worker'] : []), ...(options.args ?? [])]
  const timeoutMs = options.timeoutMs ?? SERVER_START_TIMEOUT_MS
  const { proc, match } = await startFirstcome(args, env, banner, timeoutMs, {
    descriptorLimit: options.descriptorLimit,
    faketime: options.faketime,
  })
  const url = match[1] ?? ''
  try {
    await waitForReady(url, timeoutMs)
  } catch (err) {
    await stopAll([proc])
    throw new Error(`${String(err)}; output:\n${proc.output().slice(-4000)}`)
  }
  return Object.assign(proc, { url })
}

async function waitForReady(url: string, timeoutMs = SERVER_START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/readyz`).catch(() => null)
    await res?.text()
    if (res?.status === 200) return
    await sleep(50)
  }
  throw new Error(`${url}/readyz did not answer 200`)
}

/**
 * Server processes of one suite on one SQLite database of its own, created at
 * the first start; after the suite every server is killed and the database
 * dropped.
 */
export function serversOnOneDatabase() {
  const servers: ServerProcess[] = []
  let databaseUrl = ''
  after(async () => {
    await stopAll(servers)
    if (databaseUrl) await dropDatabaseUrl(databaseUrl)
  })
  return {
    /** '' until the first start */
    get databaseUrl() {
      return databaseUrl
    },
    async start(options: Omit<ServerOptions, 'databaseUrl'> = {}): Promise<ServerProcess> {
      databaseUrl ||= await createDatabaseUrl('sqlite')
      const server = await startServer({ databaseUrl, ...options })
      servers.push(server)
      return server
    },
  }
}

/**
 * Starts server processes with the same options (the arguments apart), each
 * killed when the test ends, whatever the test did to it meanwhile.
 */
export function serversOfTest(
  tc: TestContext,
  options: Omit<ServerOptions, 'args'>,
): (args?: string[]) => Promise<ServerProcess> {
  const servers: ServerProcess[] = []
  tc.after(() => stopAll(servers))
  return async (args = []) => {
    const server = await startServer({ ...options, args })
    servers.push(server)
    return server
  }
}
