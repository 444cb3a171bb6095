/**
 * The composition root: the only place that looks at Config to choose adapters.
 *   no REDIS_URL → embedded: in-process gate, group commit to the database
 *   REDIS_URL / REDIS_CLUSTER_NODES → Redis gate + stream, stream worker
 */
import type { Logger } from 'pino'
import type { Config } from './config.js'
import { listCoupons } from './db/coupons-repo.js'
import { type Database, openDatabase } from './db/database.js'
import { listWins } from './db/issues-repo.js'
import { migrateToLatest } from './db/migrate.js'
import { rulesOf } from './domain/coupon.js'
import type { CouponEvents } from './events/coupon-events.js'
import { MemoryCouponEvents } from './events/memory-coupon-events.js'
import { MemoryStockGate } from './gate/memory-stock-gate.js'
import type { StockGate } from './gate/stock-gate.js'
import { type UserVerifier, userVerifier } from './http/auth.js'
import type { ReadinessChecks } from './ops/health-routes.js'
import { Metrics } from './ops/metrics.js'
import { GroupCommitRecorder } from './queue/group-commit-recorder.js'
import type { WinRecorder } from './queue/win-recorder.js'
import { CouponService } from './service/coupon-service.js'
import { IssueService } from './service/issue-service.js'

export interface Container {
  config: Readonly<Config>
  logger: Logger
  database: Database
  gate: StockGate
  events: CouponEvents
  recorder: WinRecorder | null
  coupons: CouponService
  issues: IssueService
  metrics: Metrics
  checks: ReadinessChecks
  verifyUser: UserVerifier | null
  /** Redis mode only: starts a stream worker in this process. */
  startWorker?: () => { stop(): Promise<void> }
  /** Drains what is in hand and closes every connection, in dependency order. */
  close(): Promise<void>
}

/** Rebuilds the in-process gate from the system of record. */
async function restoreMemoryGate(database: Database): Promise<MemoryStockGate> {
  const gate = new MemoryStockGate()
  for (const coupon of await listCoupons(database.db)) {
    gate.restore(rulesOf(coupon), await listWins(database.db, coupon.id))
  }
  return gate
}

export async function createContainer(
  config: Readonly<Config>,
  logger: Logger,
): Promise<Container> {
  const database = openDatabase(config.databaseUrl, config.dialect, { poolSize: config.dbPoolSize })
  try {
    await migrateToLatest(database.db, config.dialect)
  } catch (err) {
    await database.close().catch(() => {})
    throw err
  }
  const metrics = new Metrics()

  if (config.redis) {
    throw new Error('Redis mode is not available in this build')
  }

  const gate = await restoreMemoryGate(database)
  const recorder = new GroupCommitRecorder(database, {
    onError: (err, wins) => logger.error({ err, wins }, 'group commit failed; retrying'),
  })
  const events = new MemoryCouponEvents()
  const issues = new IssueService({
    db: database.db,
    gate,
    recorder,
    cache: null,
    onOutcome: (o) => metrics.countOutcome(o),
  })
  const coupons = new CouponService(database.db, gate, events)
  return {
    config,
    logger,
    database,
    gate,
    events,
    recorder,
    coupons,
    issues,
    metrics,
    checks: { database: () => database.ping() },
    verifyUser: config.jwt ? userVerifier(config.jwt) : null,
    async close() {
      await recorder.drain()
      await events.close()
      await gate.close()
      await database.close()
    },
  }
}
