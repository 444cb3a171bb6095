/**
 * A client process: receives a LoadPlan, waits for the common start time, loads
 * the target, streams one Sample per second and ends with its WorkerResult.
 * Several of these share the client's work when one process cannot keep up.
 */
import { fileURLToPath } from 'node:url'
import { runClosedLoop } from './closed-loop.js'
import { runOpenLoop } from './open-loop.js'
import { Recorder, type Sample, type WorkerResult } from './recorder.js'
import { expectation, idSource, type LoadPlan, requestBuilder } from './scenarios.js'
import { OpenLoopSchedule } from './schedule.js'

export type ToWorker = { type: 'start'; plan: LoadPlan; startEpochMs: number }
export type FromWorker =
  | { type: 'ready' }
  | { type: 'sample'; sample: Sample }
  | { type: 'result'; result: WorkerResult }
  | { type: 'error'; message: string }

/** Runs one plan in this process; also used directly when no child is wanted. */
export async function runPlan(
  plan: LoadPlan,
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
  if (plan.rate === null) await runClosedLoop(loop)
  else {
    const schedule = new OpenLoopSchedule(plan.rate, plan.durationMs, plan.part, plan.of)
    await runOpenLoop({ ...loop, schedule })
  }
  return recorder.finish(performance.now())
}

function send(message: FromWorker, then?: () => void) {
  process.send?.(message, undefined, undefined, then)
}

// Only when started as a client process, not when imported.
if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  process.on('message', (message: ToWorker) => {
    if (message.type !== 'start') return
    runPlan(message.plan, message.startEpochMs, (sample) => send({ type: 'sample', sample })).then(
      // Disconnect only once the last message is handed over.
      (result) => send({ type: 'result', result }, () => process.disconnect()),
      (err: unknown) =>
        send({ type: 'error', message: err instanceof Error ? err.message : String(err) }, () =>
          process.disconnect(),
        ),
    )
  })
  // The bench is gone (killed): stop loading its target.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready' })
}
