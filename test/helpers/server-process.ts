/**
 * A real `firstcome serve` process (through tsx), for end-to-end tests that kill,
 * signal or restart it. It listens on a port of its own choosing (PORT=0) on
 * 127.0.0.1; the port is read from the banner it prints once listening.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const START_TIMEOUT_MS = 30_000

export interface ServerExit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ServerProcess {
  url: string
  child: ChildProcess
  /** Everything the process wrote to stdout so far. */
  stdout(): string
  stderr(): string
  exited: Promise<ServerExit>
  /** Kills the process if it still runs (SIGKILL) and waits for its exit. */
  stop(): Promise<ServerExit>
}

export interface ServerOptions {
  databaseUrl: string
  /** ADMIN_TOKEN; omitted → the server generates one */
  adminToken?: string
  env?: Record<string, string>
}

/** Starts `firstcome serve` and resolves once it listens and /readyz answers 200. */
export async function startServer(options: ServerOptions): Promise<ServerProcess> {
  // Only what the service needs: nothing from the test environment (REDIS_URL, …) leaks in.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: options.databaseUrl,
    LOG_LEVEL: 'warn',
    ...(options.adminToken === undefined ? {} : { ADMIN_TOKEN: options.adminToken }),
    ...options.env,
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
  })
  const exited = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    return exited
  }

  try {
    const url = await waitForListening(() => out, exited)
    await waitForReady(url)
    return { url, child, stdout: () => out, stderr: () => err, exited, stop }
  } catch (error) {
    await stop()
    throw new Error(`server did not start: ${String(error)}\nstdout: ${out}\nstderr: ${err}`)
  }
}

async function waitForListening(
  stdout: () => string,
  exited: Promise<ServerExit>,
): Promise<string> {
  let gone = false
  exited.then(() => {
    gone = true
  })
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    const m = /listening on (http:\/\/[^\s]+)/.exec(stdout())
    if (m?.[1]) return m[1]
    if (gone) throw new Error('the process exited')
    await sleep(50)
  }
  throw new Error('no banner within the start timeout')
}

async function waitForReady(url: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/readyz`).catch(() => null)
    await res?.text()
    if (res?.status === 200) return
    await sleep(50)
  }
  throw new Error('/readyz did not answer 200')
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
