/**
 * `serve` with API_PROCESSES > 1 (Redis mode): this primary process runs the
 * migrations once, then forks that many `serve` processes sharing the port, and
 * replaces one that dies. It serves nothing itself.
 *
 * The processes accept from the shared socket themselves (SCHED_NONE) rather than
 * through the primary's round robin: since libuv 1.45 a busy Node process accepts
 * one new connection per event-loop turn, and handing each over to a busy worker
 * through the primary was slower still; processes each accepting take a flash
 * crowd's connections in a fraction of the time (docs/benchmarks.md).
 */
import cluster from 'node:cluster'
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { openDatabase } from './db/database.js'
import { migrateToLatest } from './db/migrate.js'
import { relayClusterScrapes } from './ops/cluster-metrics.js'

const RESPAWN_DELAY_MS = 1000
/**
 * What an API process may take to stop beyond its connections' grace: finishing
 * the worker's batch in hand and closing its clients.
 */
const STOP_MARGIN_MS = 20_000

export async function runPrimary(config: Readonly<Config>, logger: Logger): Promise<void> {
  const database = openDatabase(config.databaseUrl, config.dialect, { poolSize: 1 })
  try {
    await migrateToLatest(database.db, config.dialect)
  } finally {
    await database.close()
  }

  cluster.schedulingPolicy = cluster.SCHED_NONE
  relayClusterScrapes()
  let stopping = false
  // Once stopping: whether every API process has exited 0 so far.
  let clean = true
  for (let i = 0; i < config.apiProcesses; i++) cluster.fork()
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      // Ended by the SIGTERM itself: it was still starting and served nothing yet.
      if (code !== 0 && signal !== 'SIGTERM') {
        clean = false
        logger.error({ pid: worker.process.pid, code, signal }, 'an API process failed to stop')
      }
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(clean ? 0 : 1)
      return
    }
    logger.error({ pid: worker.process.pid, code, signal }, 'an API process died; starting another')
    setTimeout(() => {
      if (!stopping) cluster.fork()
    }, RESPAWN_DELAY_MS)
  })

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down the API processes')
    const workers = Object.values(cluster.workers ?? {})
    if (workers.length === 0) process.exit(0)
    for (const w of workers) w?.process.kill('SIGTERM')
    setTimeout(() => {
      logger.error('API processes did not stop in time; killing them')
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
      process.exit(1)
    }, config.http.shutdownGraceMs + STOP_MARGIN_MS).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
