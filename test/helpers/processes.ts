/**
 * The real `firstcome` command in child processes (`node --import tsx src/main.ts`),
 * for tests that kill -9 a worker or run several at once. Each child is killed
 * by its pid when the test ends (`stopAll`), whatever happened.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MAX_OUTPUT = 1_000_000

export interface ServiceProcess {
  readonly pid: number
  readonly child: ChildProcess
  /** stdout and stderr so far (the first MiB) */
  output(): string
  /** Resolves with the exit code (null when killed by a signal) and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resolves once the output contains `text`; rejects if the process exits first. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>
  signal(signal: NodeJS.Signals): void
}

const running = new Set<ServiceProcess>()

/** Spawns `firstcome <args>` with the given environment added to a minimal one. */
export function spawnFirstcome(args: string[], env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  if (child.pid === undefined) throw new Error('could not spawn firstcome')
  let output = ''
  const listeners = new Set<() => void>()
  const append = (chunk: Buffer) => {
    if (output.length < MAX_OUTPUT) output += chunk.toString('utf8')
    for (const l of listeners) l()
  }
  child.stdout?.on('data', append)
  child.stderr?.on('data', append)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  const proc: ServiceProcess = {
    pid: child.pid,
    child,
    output: () => output,
    exited,
    waitForOutput(text, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!output.includes(text)) return
          finish()
          resolve()
        }
        const timer = setTimeout(() => {
          finish()
          reject(new Error(`no "${text}" after ${timeoutMs} ms; output:\n${output.slice(-4000)}`))
        }, timeoutMs)
        const finish = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        exited.then(() => {
          if (output.includes(text)) return
          finish()
          reject(new Error(`exited before "${text}"; output:\n${output.slice(-4000)}`))
        })
        listeners.add(check)
        check()
      })
    },
    signal(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
  }
  running.add(proc)
  exited.then(() => running.delete(proc))
  return proc
}

/** `firstcome worker`, resolved once it reports that it runs. */
export async function startWorkerProcess(env: Record<string, string>): Promise<ServiceProcess> {
  const proc = spawnFirstcome(['worker'], env)
  try {
    await proc.waitForOutput('firstcome worker running')
  } catch (err) {
    proc.signal('SIGKILL')
    throw err
  }
  return proc
}

/** SIGKILLs the children given, by default every one still running (test teardown). */
export async function stopAll(children: Iterable<ServiceProcess> = running): Promise<void> {
  const all = [...children]
  for (const p of all) {
    p.signal('SIGCONT')
    p.signal('SIGKILL')
  }
  await Promise.all(all.map((p) => p.exited))
}
