/**
 * The `firstcome` command: serve | worker | bench | verify-draw.
 */
import cluster from 'node:cluster'
import { parseArgs } from 'node:util'
import v8 from 'node:v8'
import pino, { type Logger } from 'pino'
import { buildApp } from './app.js'
import { runPrimary } from './cluster.js'
import { type Config, ConfigError, dialectOf, loadConfig } from './config.js'
import { type Container, createContainer } from './container.js'
import { listCoupons } from './db/coupons-repo.js'
import { missingDatabaseHint } from './db/create-database.js'
import type { Coupon } from './domain/coupon.js'
import { runVerifyDraw } from './draw/verify-command.js'
import { closeGracefully } from './http/server.js'
import { describeMode } from './mode.js'
import { processGauge } from './ops/scrape-gauges.js'
import { startWorkerServer } from './ops/worker-server.js'

const USAGE = `Usage: firstcome <command> [options]

Commands:
  serve [--no-worker]   HTTP API (plus the queue worker in Redis mode, unless --no-worker)
  worker                the queue worker alone (Redis mode)
  bench [options]       the load generator; see \`firstcome bench --help\`
  verify-draw [options] recompute a coupon's opening draw from its public record;
                        see \`firstcome verify-draw --help\`

Configuration comes from the environment (PORT, DATABASE_URL, REDIS_URL, ...);
see the README.`

const HOUR_MS = 3_600_000
const BENCH_PACKAGE = '@firstcome/bench'

async function createDemoCoupon(container: Container): Promise<Coupon | null> {
  if ((await listCoupons(container.database.db)).length > 0) return null
  const now = Date.now()
  return container.coupons.create({
    title: '네고왕',
    totalQuantity: 500,
    discountAmount: 100_000,
    minAvailableAmount: 110_000,
    issueStart: new Date(now),
    issueEnd: new Date(now + 24 * HOUR_MS),
  })
}

function printBanner(
  config: Config,
  port: number,
  demo: Coupon | null,
  firstCoupon: number | null,
) {
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host
  const listening = `http://${host}:${port}`
  // Behind a proxy the listen address is not where users go: PUBLIC_URL is.
  const base = config.publicUrl ?? listening
  // An operator's own token stays out of the output (and so out of container
  // logs); only a generated one, which nobody else knows, is printed.
  const lines = [
    `firstcome listening on ${listening}  (${describeMode(config)})`,
    config.adminTokenGenerated
      ? `  dashboard    ${base}/#token=${encodeURIComponent(config.adminToken)}`
      : `  dashboard    ${base}/   (asks for the admin token)`,
    `  API docs     ${base}/docs`,
    config.adminTokenGenerated
      ? `  admin token  ${config.adminToken}   (generated at start; set ADMIN_TOKEN to keep one)`
      : '  admin token  from ADMIN_TOKEN (not printed)',
  ]
  if (demo) {
    lines.push(
      `  demo coupon  #${demo.id} ${demo.title}: ${demo.totalQuantity} coupons, open until ${demo.issueEnd.toISOString()}`,
    )
  }
  if (firstCoupon !== null) {
    lines.push(
      `  try it       curl -i -X POST ${base}/v1/coupons/${firstCoupon}/issues -H 'content-type: application/json' -d '{"userId": 1}'`,
    )
  }
  process.stdout.write(`${lines.join('\n')}\n`)
}

async function serve(config: Readonly<Config>, logger: Logger, withWorker: boolean) {
  const container = await createContainer(config, logger)
  processGauge(container.metrics.registry, 'api')
  const demo = config.redis ? null : await createDemoCoupon(container)
  const app = await buildApp(container, logger)
  const worker = withWorker ? await container.startWorker?.() : undefined
  // Before listening: from its first request on, a signal stops it gracefully.
  onShutdown(logger, async () => {
    // Stops accepting, lets in-flight requests finish, and closes what is still
    // open after the grace (a stalled or slow client must not hold the exit).
    await closeGracefully(app, config.http.shutdownGraceMs)
    await worker?.stop() // finishes the batch in hand
    await container.close()
  })
  await container.watch.start()
  if (config.events.pump) container.pump.start()
  await app.listen({ port: config.port, host: config.host, backlog: config.listenBacklog })
  container.fleet.start()
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.port
  // With API_PROCESSES > 1, the first process speaks for all of them.
  if (!cluster.isWorker || cluster.worker?.id === 1) {
    const first = demo?.id ?? (await listCoupons(container.database.db))[0]?.id ?? null
    printBanner(config, port, demo, first)
  }
}

async function runWorker(config: Readonly<Config>, logger: Logger) {
  const container = await createContainer(config, logger)
  if (!container.startWorker) {
    await container.close()
    throw new ConfigError(
      '`firstcome worker` needs Redis: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES',
    )
  }
  const worker = await container.startWorker()
  if (config.events.pump) container.pump.start()
  processGauge(container.metrics.registry, 'worker')
  let accepting = true
  const server = await startWorkerServer(
    {
      metrics: container.metrics,
      readiness: worker.readiness,
      accepting: () => accepting,
      logger,
    },
    config.metricsPort,
    config.host,
  )
  process.stdout.write(
    `firstcome worker running (${describeMode(config)}); metrics on ${server.url}/metrics\n`,
  )
  onShutdown(logger, async () => {
    accepting = false
    await server.app.close()
    await worker.stop()
    await container.close()
  })
}

function onShutdown(logger: Logger, stop: () => Promise<void>) {
  let stopping = false
  const handler = (signal: NodeJS.Signals) => {
    // An API process under the primary hears Ctrl-C from the terminal too; the
    // primary relays it as SIGTERM, which alone stops it.
    if (signal === 'SIGINT' && cluster.isWorker) return
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', handler)
  process.on('SIGINT', handler)
}

/**
 * Under thousands of connections every request's objects live long enough to be
 * promoted, and V8's default heap growth lets that garbage pile up to several
 * times the live data before a full collection; held growth keeps the resident
 * size near the live data at the same throughput (docs/benchmarks.md). V8 reads
 * this flag at each collection.
 */
function limitHeapGrowth(config: Readonly<Config>) {
  if (config.heapGrowingPercent > 0) {
    v8.setFlagsFromString(`--heap-growing-percent=${config.heapGrowingPercent}`)
  }
}

/**
 * The load generator, the workspace package @firstcome/bench (its sources under
 * the "exports" condition firstcome-source, else its build). Without it (the
 * service installed alone), `bench` says so and the rest works.
 */
async function loadBench(): Promise<{ runBench(args: string[]): Promise<void> }> {
  try {
    return await import(BENCH_PACKAGE)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'ERR_MODULE_NOT_FOUND' && String(err).includes(BENCH_PACKAGE)) {
      throw new ConfigError(
        `the bench is not installed here (the ${BENCH_PACKAGE} package): run it from a clone of the repository after \`npm install\``,
      )
    }
    throw err
  }
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command === 'bench') return (await loadBench()).runBench(rest)
  if (command === 'verify-draw') {
    process.exitCode = await runVerifyDraw(rest)
    return
  }
  if (command !== 'serve' && command !== 'worker') {
    process.stdout.write(`${USAGE}\n`)
    if (command !== undefined && command !== 'help' && command !== '--help' && command !== '-h') {
      process.exitCode = 2
    }
    return
  }
  const { values } = parseArgs({
    args: rest,
    options: { 'no-worker': { type: 'boolean', default: false } },
    strict: true,
  })
  const config = loadConfig(process.env)
  const logger = pino({ level: config.logLevel })
  limitHeapGrowth(config)
  if (command === 'worker') return runWorker(config, logger)
  if (config.apiProcesses > 1 && cluster.isPrimary) return runPrimary(config, logger)
  await serve(config, logger, !values['no-worker'])
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (
    err instanceof ConfigError ||
    (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
  ) {
    process.stderr.write(`firstcome: ${err.message}\n`)
    process.exit(2)
  }
  process.stderr.write(
    `firstcome: failed to start: ${err instanceof Error ? err.message : String(err)}\n`,
  )
  if (err instanceof Error && err.cause)
    process.stderr.write(`  cause: ${String((err.cause as Error).message ?? err.cause)}\n`)
  const url = process.env.DATABASE_URL?.trim()
  const hint = url ? missingDatabaseHint(err, url, dialectOf(url)) : null
  if (hint) process.stderr.write(`  ${hint}\n`)
  process.exit(1)
})
