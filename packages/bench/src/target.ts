/**
 * What the bench loads: a running server (--url), or firstcome started here as a
 * child process with this process's environment, on a temporary SQLite database
 * when none is configured. Either way the bench learns the admin token and, when
 * it can, the database (for the duplicate-row checks).
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type DelayProxyProcess, delayEnv } from './delay-proxy.js'
import { type ServerProcess, startFirstcome } from './local-server.js'
import { type Dialect, describeMode, dialectOf, loadConfig } from './service.js'
import { createDatabaseIfMissing } from './service-backends.js'

export interface Target {
  url: string
  server: ServerProcess | null
  description: string
  adminToken: string | null
  db: { url: string; dialect: Dialect } | null
  /** the delaying proxy in front of the started server's Redis and database */
  delayProxy: DelayProxyProcess | null
  cleanup: () => void
}

/**
 * The bench owns the database it is pointed at (a throw-away such as `fc_bench`):
 * on PostgreSQL or MySQL it creates it when missing, so a first run needs no
 * step by hand. Without the right to, it says so and the server's own error
 * follows, naming the command to run.
 */
export async function ensureBenchDatabase(
  url: string,
  dialect: Dialect,
  log: (s: string) => void,
): Promise<void> {
  if (dialect === 'sqlite') return
  try {
    if (await createDatabaseIfMissing(url, dialect)) {
      log(`created the database ${new URL(url).pathname.slice(1)}`)
    }
  } catch (err) {
    log(`could not create the database: ${(err as Error).message}`)
  }
}

export async function openTarget(
  o: TargetOptions,
  env: NodeJS.ProcessEnv,
  log: (s: string) => void,
): Promise<Target> {
  const given = o.databaseUrl ? { url: o.databaseUrl, dialect: dialectOf(o.databaseUrl) } : null
  if (o.url) {
    const target: Target = {
      url: o.url.replace(/\/+$/, ''),
      server: null,
      description: 'a running server',
      adminToken: o.adminToken,
      db: given,
      delayProxy: null,
      cleanup: () => {},
    }
    return target
  }
  // The child gets this process's environment: REDIS_URL=… DATABASE_URL=… firstcome
  // bench loads that mode. Without a DATABASE_URL, a fresh SQLite file of its own.
  const childEnv: NodeJS.ProcessEnv = { ...env, HOST: '127.0.0.1', PORT: '0' }
  let tempDir: string | null = null
  if (!childEnv.DATABASE_URL?.trim()) {
    tempDir = mkdtempSync(join(tmpdir(), 'firstcome-bench-'))
    childEnv.DATABASE_URL = `sqlite:${join(tempDir, 'bench.sqlite')}`
  }
  if (o.adminToken) childEnv.ADMIN_TOKEN = o.adminToken
  else if (!childEnv.ADMIN_TOKEN?.trim())
    childEnv.ADMIN_TOKEN = randomBytes(18).toString('base64url')
  if (!childEnv.LOG_LEVEL?.trim()) childEnv.LOG_LEVEL = 'warn'
  if (o.redisClusterNodes) {
    childEnv.REDIS_CLUSTER_NODES = o.redisClusterNodes
    delete childEnv.REDIS_URL
  }
  // The server parses the same environment the same way; a bad variable fails here first.
  const config = loadConfig(childEnv)
  await ensureBenchDatabase(config.databaseUrl, config.dialect, log)
  let delayProxy: DelayProxyProcess | null = null
  const cleanup = () => {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true })
    void delayProxy?.stop()
  }
  let mode = describeMode(config)
  try {
    let serverEnv = childEnv
    if (o.delayMs !== null) {
      const delayed = await delayEnv(childEnv, o.delayMs)
      delayProxy = delayed.proxy
      serverEnv = delayed.env
      mode += `; ${delayed.covers} behind a ${o.delayMs} ms one-way delay`
    }
    log(`starting firstcome (${mode})`)
    const server = await startFirstcome(serverEnv, o.serverNodeOptions, o.serverCpus)
    const target: Target = {
      url: server.url,
      server,
      description: `firstcome started by the bench (${mode})`,
      adminToken: config.adminToken,
      db: given ?? { url: config.databaseUrl, dialect: config.dialect },
      delayProxy,
      cleanup,
    }
    return target
  } catch (err) {
    cleanup()
    throw err
  }
}

export interface TargetOptions {
  url: string | null
  adminToken: string | null
  databaseUrl: string | null
  serverNodeOptions: string[]
  /** the CPUs the started server may run on (`taskset -c` list); null: any */
  serverCpus: string | null
  /** one-way delay, ms, in front of the started server's Redis and database; null: none */
  delayMs: number | null
  /** REDIS_CLUSTER_NODES for the started server (instead of REDIS_URL) */
  redisClusterNodes: string | null
}
