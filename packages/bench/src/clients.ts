/**
 * Runs the load in N client processes (or in this one when N = 0) and gathers
 * their per-second samples and results. The processes start at one common
 * instant, agreed after every one of them has prepared its plan, so their seconds
 * line up.
 */
import { fork } from 'node:child_process'
import { type FromWorker, preparePlan, type ToWorker } from './load-worker.js'
import { nodeEntry } from './node-entry.js'
import type { Sample, WorkerResult } from './recorder.js'
import type { LoadPlan } from './scenarios.js'

export interface ClientRun {
  /** epoch ms at which the load started */
  startEpochMs: number
  results: WorkerResult[]
}

/** Time given to the client processes between "all ready" and the first request. */
const START_DELAY_MS = 200
/**
 * The same after the open loop has primed its connections: the server has just
 * accepted them all and answered a request on each, a burst whose tail (the last
 * answers, the garbage collections it caused) must not fall into the measured
 * rate. Both servers get the same pause.
 */
const SETTLE_AFTER_PRIMING_MS = 1000

const startDelay = (base: Omit<LoadPlan, 'part' | 'of'>) =>
  base.rate === null ? START_DELAY_MS : SETTLE_AFTER_PRIMING_MS

/** Splits `total` into `parts` near-equal integers. */
export function share(total: number, parts: number, part: number): number {
  return Math.floor(((part + 1) * total) / parts) - Math.floor((part * total) / parts)
}

export function planFor(base: Omit<LoadPlan, 'part' | 'of'>, part: number, of: number): LoadPlan {
  return { ...base, part, of, connections: share(base.connections, of, part) }
}

export async function runClients(
  base: Omit<LoadPlan, 'part' | 'of'>,
  processes: number,
  onSample: (sample: Sample) => void,
  onStart: (startEpochMs: number) => void = () => {},
): Promise<ClientRun> {
  if (processes === 0) {
    const run = await preparePlan(planFor(base, 0, 1))
    const startEpochMs = Date.now() + startDelay(base)
    onStart(startEpochMs)
    const result = await run(startEpochMs, onSample)
    return { startEpochMs, results: [result] }
  }
  const entry = nodeEntry('./load-worker')
  const children = Array.from({ length: processes }, () =>
    fork(entry.path, [], {
      execArgv: entry.execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  )
  try {
    await Promise.all(children.map((c) => once(c, (m) => m.type === 'ready')))
    await Promise.all(
      children.map((child, part) => {
        const prepare: ToWorker = { type: 'prepare', plan: planFor(base, part, processes) }
        child.send(prepare)
        return once(child, (m) => m.type === 'prepared')
      }),
    )
    const startEpochMs = Date.now() + startDelay(base)
    onStart(startEpochMs)
    const results = await Promise.all(
      children.map((child) => {
        const done = new Promise<WorkerResult>((resolve, reject) => {
          child.on('message', (m: FromWorker) => {
            if (m.type === 'sample') onSample(m.sample)
            else if (m.type === 'result') resolve(m.result)
            else if (m.type === 'error') reject(new Error(`client process: ${m.message}`))
          })
          child.on('exit', (code) => reject(new Error(`client process exited (${code}) early`)))
        })
        const start: ToWorker = { type: 'start', startEpochMs }
        child.send(start)
        return done
      }),
    )
    return { startEpochMs, results }
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill()
  }
}

function once(child: ReturnType<typeof fork>, match: (m: FromWorker) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    child.on('message', (m: FromWorker) => {
      if (match(m)) resolve()
    })
    child.once('exit', (code) =>
      reject(new Error(`client process exited (${code}) before it was ready`)),
    )
    child.once('error', reject)
  })
}
