/**
 * A client process: receives a LoadPlan and prepares it (an open loop opens its
 * connections), then waits for the common start time, loads the target, streams
 * one Sample per second and ends with its WorkerResult. Several of these share
 * the client's work when one process cannot keep up.
 */
import { fileURLToPath } from 'node:url'
import { runClosedLoop } from './closed-loop.js'
import { ConnectionPool, runOpenLoop } from './open-loop.js'
import { Recorder, type Sample, type WorkerResult } from './recorder.js'
import {
  expectation,
  idSource,
  type LoadPlan,
  primingRequest,
  requestBuilder,
} from './scenarios.js'
import { OpenLoopSchedule } from './schedule.js'

export type ToWorker = { type: 'prepare'; plan: LoadPlan } | { type: 'start'; startEpochMs: number }
export type FromWorker =
  | { type: 'ready' }
  | { type: 'prepared' }
  | { type: 'sample'; sample: Sample }
  | { type: 'result'; result: WorkerResult }
  | { type: 'error'; message: string }

export type PreparedPlan = (
  startEpochMs: number,
  emit: (sample: Sample) => void,
) => Promise<WorkerResult>

/**
 * Prepares one plan in this process (also used directly when no child is wanted)
 * and returns what runs it from the common start time.
 */
export async function preparePlan(plan: LoadPlan): Promise<PreparedPlan> {
  let pool: ConnectionPool | null = null
  if (plan.rate !== null) {
    pool = new ConnectionPool(plan.target)
    await pool.prime(plan.connections, primingRequest(plan), plan.timeoutMs)
  }
  return (startEpochMs, emit) => runPlan(plan, pool, startEpochMs, emit)
}

async function runPlan(
  plan: LoadPlan,
  pool: ConnectionPool | null,
  startEpochMs: number,
  emit: (sample: Sample) => void,
): Promise<WorkerResult> {
  // performance.now() is the clock of record; the epoch start is shared by all processes.
  const t0 = startEpochMs - performance.timeOrigin
  const recorder = new Recorder({
    t0,
    range: plan.users.kind === 'random' ? plan.users : null,
    expect: expectation(plan),
    maxWinners: plan.maxWinners,
    emit,
  })
  const build = requestBuilder(plan)
  const ids = idSource(plan)
  const next = () => {
    const userId = ids.next()
    return { userId, request: build(userId) }
  }
  const loop = {
    target: plan.target,
    connections: plan.connections,
    t0,
    durationMs: plan.durationMs,
    rampMs: plan.rampMs,
    timeoutMs: plan.timeoutMs,
    recorder,
    next,
  }
  if (plan.rate === null || pool === null) await runClosedLoop(loop)
  else {
    const schedule = new OpenLoopSchedule(plan.rate, plan.durationMs, plan.part, plan.of)
    await runOpenLoop({ ...loop, schedule, pool })
  }
  return recorder.finish(performance.now())
}

function send(message: FromWorker, then?: () => void) {
  process.send?.(message, undefined, undefined, then)
}

// Only when started as a client process, not when imported.
if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  const fail = (err: unknown) =>
    send({ type: 'error', message: err instanceof Error ? err.message : String(err) }, () =>
      process.disconnect(),
    )
  let prepared: Promise<PreparedPlan> | null = null
  process.on('message', (message: ToWorker) => {
    if (message.type === 'prepare') {
      prepared = preparePlan(message.plan)
      prepared.then(() => send({ type: 'prepared' }), fail)
    } else if (message.type === 'start' && prepared) {
      prepared
        .then((run) => run(message.startEpochMs, (sample) => send({ type: 'sample', sample })))
        // Disconnect only once the last message is handed over.
        .then((result) => send({ type: 'result', result }, () => process.disconnect()), fail)
    }
  })
  // The bench is gone (killed): stop loading its target.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready' })
}
