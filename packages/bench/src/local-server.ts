/**
 * Starts a server for the bench as a child process — firstcome itself (`serve`,
 * with the environment the bench was given) or the bare baseline — finds its
 * URL in its first line of output, and waits until GET /readyz answers 200.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { processCpuMs, processRss, type Rss } from './kernel.js'
import { type NodeEntry, nodeEntry } from './node-entry.js'
import { ServerLog, type ServerLogSummary } from './server-log.js'
import { firstcomeEntry } from './service.js'

export interface ServerProcess {
  url: string
  pid: number
  /** CPU the process has used so far, ms (null off Linux) */
  cpuMs(): number | null
  /** resident memory of the process and its children (null off Linux) */
  rss(): Rss | null
  /** The last output of the process, for an error message. */
  output(): string
  /** what it has logged at warn or above so far */
  log(): ServerLogSummary
  /** SIGTERM, then SIGKILL if it has not exited in time. */
  stop(): Promise<void>
  /** SIGTERM now, without waiting (the bench itself is being stopped). */
  kill(): void
}

export interface StartOptions {
  args: string[]
  env?: NodeJS.ProcessEnv
  /** extra node options, e.g. --cpu-prof */
  nodeOptions?: readonly string[]
  /** the CPUs it may run on (`taskset -c` list, Linux); null: any */
  cpus?: string | null
  /** how the process announces its URL on stdout */
  listening: RegExp
  timeoutMs?: number
}

const OUTPUT_KEEP = 16 * 1024

export async function startServer(entry: NodeEntry, o: StartOptions): Promise<ServerProcess> {
  const node = [
    process.execPath,
    ...entry.execArgv,
    ...(o.nodeOptions ?? []),
    entry.path,
    ...o.args,
  ]
  // taskset execs node: the child's pid is the server's.
  const command = o.cpus ? ['taskset', '-c', o.cpus, ...node] : node
  const child = spawn(command[0] as string, command.slice(1), {
    env: o.env ?? {},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_KEEP)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const log = new ServerLog()
  child.stdout?.on('data', log.stream())
  child.stderr?.on('data', log.stream())
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  const server: ServerProcess = {
    url: '',
    pid: child.pid ?? 0,
    cpuMs: () => processCpuMs(child.pid ?? 0),
    rss: () => processRss(child.pid ?? 0),
    output: () => output,
    log: () => log.summary(),
    stop: () => stopChild(child, exited),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    },
  }
  const deadline = Date.now() + (o.timeoutMs ?? 30_000)
  try {
    server.url = await waitForUrl(child, () => output, o.listening, exited, deadline)
    await waitReady(server.url, exited, deadline)
  } catch (err) {
    await server.stop()
    const tail = output.trim().split('\n').slice(-15).join('\n')
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${tail}`)
  }
  return server
}

function waitForUrl(
  child: ChildProcess,
  output: () => string,
  pattern: RegExp,
  exited: Promise<number | null>,
  deadline: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(output())
      if (m?.[1]) {
        cleanup()
        resolve(m[1])
      }
    }
    const timer = setTimeout(
      () => {
        cleanup()
        reject(new Error('the server did not start in time'))
      },
      Math.max(0, deadline - Date.now()),
    )
    const cleanup = () => {
      clearTimeout(timer)
      child.stdout?.off('data', check)
    }
    child.stdout?.on('data', check)
    exited.then((code) => {
      cleanup()
      reject(new Error(`the server exited (code ${code}) before listening`))
    })
    check()
  })
}

async function waitReady(url: string, exited: Promise<number | null>, deadline: number) {
  let gone = false
  exited.then(() => {
    gone = true
  })
  let last = ''
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(`${url}/readyz`)
      await res.arrayBuffer()
      if (res.status === 200) return
      last = `readyz answered ${res.status}`
    } catch (err) {
      last = err instanceof Error ? err.message : String(err)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(gone ? 'the server exited before it was ready' : `not ready in time (${last})`)
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

/** firstcome `serve` with the bench's environment: the mode under test. */
export function startFirstcome(
  env: NodeJS.ProcessEnv,
  nodeOptions: readonly string[] = [],
  cpus: string | null = null,
) {
  return startServer(firstcomeEntry, {
    args: ['serve'],
    env,
    nodeOptions,
    cpus,
    listening: /firstcome listening on (http:\/\/\S+)/,
  })
}

export function startBaseline(
  scenario: string,
  nodeOptions: readonly string[] = [],
  cpus: string | null = null,
) {
  return startServer(nodeEntry('./baseline-server'), {
    args: [scenario],
    env: {},
    nodeOptions,
    cpus,
    listening: /baseline listening on (http:\/\/\S+)/,
  })
}
