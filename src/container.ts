/**
 * The composition root: the only place that looks at Config to choose adapters,
 * and the one place that builds: the services, the HTTP API's parts (buildApp in
 * app.ts only registers them) and the stream worker with its readiness.
 *   no REDIS_URL → embedded: in-process gate, group commit to the database
 *   REDIS_URL / REDIS_SENTINELS / REDIS_CLUSTER_NODES → Redis gate + stream, stream worker
 */
import type { Logger } from 'pino'
import type { Config, RedisConfig } from './config.js'
import { CouponState } from './coupon-state/coupon-state.js'
import { RedisKeys } from './coupon-state/keys.js'
import { oldestQueuedAt, readQueued } from './coupon-state/queued.js'
import { countCodes, countCodesOf } from './db/codes-repo.js'
import { findCoupon, listCouponIds, listCoupons } from './db/coupons-repo.js'
import {
  type Database,
  openDatabase,
  openExportDatabase,
  openReadsDatabase,
} from './db/database.js'
import { drawSummaries, findDraw } from './db/draws-repo.js'
import { databaseGateSource, storedCoupons } from './db/gate-source.js'
import { migrateToLatest } from './db/migrate.js'
import { countSpent } from './db/spends-repo.js'
import type { Win } from './domain/coupon.js'
import { DrawSeeds } from './draw/seeds.js'
import type { CouponEvents } from './events/coupon-events.js'
import { EventPump } from './events/event-pump.js'
import { type FeedSignal, MemoryFeedSignal, RedisFeedSignal } from './events/feed-signal.js'
import { MemoryCouponEvents } from './events/memory-coupon-events.js'
import { RedisCouponEvents } from './events/redis-coupon-events.js'
import { WebhookStatuses, webhookGauges } from './events/webhook-status.js'
import { GateClock, gateClockReports, gateNodesOf } from './gate/gate-clock.js'
import { restoreMemoryGate } from './gate/memory-stock-gate.js'
import { couponStateReports, RedisStockGate } from './gate/redis-stock-gate.js'
import type { StockGate } from './gate/stock-gate.js'
import { type UserVerifier, userVerifier } from './http/auth.js'
import { webhookOverview } from './http/event-routes.js'
import { ISSUE_ROUTE } from './http/issue-endpoint.js'
import { IssueFastLane } from './http/issue-fast-lane.js'
import { IssuePipeline } from './http/issue-pipeline.js'
import { Overload } from './http/overload.js'
import { BODY_LIMIT_BYTES, ShutdownFlag } from './http/server.js'
import {
  type IssueLimits,
  type LimitsConfig,
  memoryIssueLimits,
  redisIssueLimits,
} from './limits/issue-limits.js'
import { ApiFleet, type FleetStore } from './ops/api-fleet.js'
import { CouponFigures } from './ops/coupon-figures.js'
import { CouponWatch, claimedOnce, redisClaims } from './ops/coupon-watch.js'
import { Heartbeats } from './ops/heartbeats.js'
import { Metrics } from './ops/metrics.js'
import { Overview } from './ops/overview.js'
import { processFiguresOf } from './ops/process-figures.js'
import { Readiness, type ReadinessChecks } from './ops/readiness.js'
import { RedisFleetStore } from './ops/redis-fleet-store.js'
import { couponGauges, workerGauge } from './ops/scrape-gauges.js'
import { GroupCommitRecorder } from './queue/group-commit-recorder.js'
import { persistKindFor } from './queue/persist/strategy.js'
import { RedisStreamWorker } from './queue/redis-stream-worker.js'
import type { WinRecorder } from './queue/win-recorder.js'
import { closeRedis, connectAll, createRedis } from './redis/connection.js'
import { logPersistence } from './redis/persistence.js'
import { CodePool } from './service/code-pool.js'
import { CouponBox } from './service/coupon-box.js'
import { CouponCache, limitedRulesOf } from './service/coupon-cache.js'
import { CouponService } from './service/coupon-service.js'
import { redisDrawLease } from './service/draw-lease.js'
import { type DrawMode, embeddedDraws, redisDraws } from './service/draw-modes.js'
import { DrawRecords } from './service/draw-records.js'
import { DrawRunner } from './service/draw-runner.js'
import { EntryRecorder } from './service/entry-recorder.js'
import { IssueService } from './service/issue-service.js'
import { KnownCoupons } from './service/known-coupons.js'
import { SpendService } from './service/spend-service.js'
import { WinnersExport } from './service/winners-export.js'

export interface WorkerHandle {
  /** `firstcome worker`'s readiness: its own Redis connection and the database */
  readiness: Readiness
  stop(): Promise<void>
}

/**
 * The HTTP API's parts, for the one app buildApp (app.ts) makes of a container:
 * it registers them, and sets `shutdown` once its close() has begun.
 */
export interface ApiParts {
  shutdown: ShutdownFlag
  /** admission and overdue requests (QUEUE_TIMEOUT_MS) */
  overload: Overload
  /** every issue request's steps, whichever transport carries it */
  pipeline: IssuePipeline
  /** the issue routes' common case, skipping Fastify's lifecycle */
  lane: IssueFastLane
  /** the dashboard's snapshot */
  overview: Overview
}

export interface Container {
  config: Readonly<Config>
  logger: Logger
  /** the event-day paths: gate loads, the worker, admin, readiness */
  database: Database
  /** public reads (status, stats, a coupon): a pool apart, so a slow one starves only its kind */
  reads: Database
  gate: StockGate
  events: CouponEvents
  recorder: WinRecorder | null
  coupons: CouponService
  issues: IssueService
  spends: SpendService
  box: CouponBox
  /** partner codes: uploads and counts */
  codes: CodePool
  /** the winners' export, through `exports` */
  winners: WinnersExport
  /** the export's own connections (see openExportDatabase) */
  exports: Database
  metrics: Metrics
  readiness: Readiness
  /** where each current coupon stands, read at most once a second */
  figures: CouponFigures
  /** logs the windows' events; started by the API (`serve`) */
  watch: CouponWatch
  /** every live API process's figures for the dashboard; started by the API (`serve`) */
  fleet: ApiFleet
  /** Redis mode: stream workers alive on every host */
  workersAlive?: () => Promise<number>
  /**
   * The clock that judges the issue window, epoch ms: Redis's as this process
   * knows it (GateClock) in Redis mode, this process's in embedded mode.
   */
  gateNow: () => number
  verifyUser: UserVerifier | null
  /** issue requests per client and per user: in Redis in Redis mode, shared by every process */
  limits: IssueLimits
  /** wakes the events feed's long polls */
  feedSignal: FeedSignal
  /** sequences events and delivers webhooks while it holds the lease; started by serve and worker */
  pump: EventPump
  /** each webhook endpoint's lag and last outcome */
  webhookStatuses: WebhookStatuses
  /** Redis mode only: starts a stream worker (with its own connection) in this process. */
  startWorker?: () => Promise<WorkerHandle>
  /** the draws' public records */
  drawRecords: DrawRecords
  /** runs each coupon's opening draw at its drawAt (every process; a lease picks one) */
  draws: DrawRunner
  /** the HTTP API's parts over the services above */
  api: ApiParts
  /** Drains what is in hand and closes every connection, in dependency order. */
  close(): Promise<void>
}

export async function createContainer(
  config: Readonly<Config>,
  logger: Logger,
): Promise<Container> {
  const { databaseUrl, dialect } = config
  const database = openDatabase(databaseUrl, dialect, {
    poolSize: config.dbPoolSize,
    timeouts: config.dbTimeouts,
    role: 'core',
  })
  const reads = openReadsDatabase(
    databaseUrl,
    dialect,
    { poolSize: config.dbReadPoolSize, timeouts: config.dbReadTimeouts },
    database,
  )
  const exports = openExportDatabase(databaseUrl, dialect, database)
  const closeDatabases = async () => {
    await exports.close()
    await reads.close()
    await database.close()
  }
  const metrics = new Metrics()
  // Requests for ids that do not exist are answered from it, not by a query each.
  const known = new KnownCoupons(() => listCouponIds(database.db))
  const seeds = new DrawSeeds(async (id) => (await findDraw(database.db, id))?.seed ?? null)
  let adapters: Adapters
  try {
    await migrateToLatest(database.db, config.dialect)
    adapters = config.redis
      ? await redisAdapters(config, config.redis, logger, database, metrics, known, seeds)
      : await embeddedAdapters(config, logger, database, metrics, seeds)
  } catch (err) {
    await closeDatabases().catch(() => {})
    throw err
  }
  const { gate, recorder, cache, events, limits, feedSignal } = adapters
  const { gateClock } = adapters
  const gateNow = gateClock ? () => gateClock.now() : Date.now
  const draws = new DrawRunner({
    db: database.db,
    gate,
    ...adapters.draw,
    // A drawAt set, moved or taken off anywhere: the runner reads the next one again.
    subscribe: (listener) => events.subscribe(() => listener()),
    logger,
    metrics,
    // drawAt is the gate's to judge, as the window is: a process whose clock is
    // ahead would close the entries early for everyone.
    now: gateNow,
  }).start()
  const webhookStatuses = new WebhookStatuses(database.db)
  webhookGauges(metrics.registry, webhookStatuses)
  const pump = new EventPump({
    db: database.db,
    signal: feedSignal,
    webhooks: config.events.webhooks,
    allowedHosts: config.events.allowedHosts,
    leaseMs: config.events.leaseMs,
    tickMs: config.events.tickMs,
    metrics,
    logger,
  })
  // Every node hears of a coupon created anywhere (and of every change, which is
  // of a coupon that exists).
  events.subscribe((id) => {
    if (id !== null) known.add(id)
  })
  const readCoupon = (id: number) => known.find(id, (i) => findCoupon(reads.db, i))
  const coupons = new CouponService(database.db, gate, events, logger, readCoupon, {
    now: gateNow,
    latest: () => gateClock?.time()?.latest ?? Date.now(),
    earliest: () => gateClock?.time()?.earliest ?? Date.now(),
  })
  // Redis outlives the processes: a change whose process died before the gate
  // took it is applied by the next one to start (embedded mode restores its
  // gate from the database at start).
  if (config.redis)
    coupons
      .applyRecordedAll()
      .catch((err: unknown) => logger.warn({ err }, "could not apply the coupons' rules at start"))
  const codes = new CodePool({
    db: database.db,
    gate,
    events,
    onSyncError: (couponId, err) =>
      logger.warn({ err, couponId }, 'the gate has not taken stored partner codes yet; retrying'),
  })
  const readiness = new Readiness({ ...adapters.checks, database: () => database.ping() })
  const figures = new CouponFigures({
    coupons: () => listCoupons(database.db),
    won: (id) => gate.won(id),
    spent: (ids) => countSpent(database.db, ids),
    codes: (ids) => countCodesOf(database.db, ids),
    oldestQueuedAt: adapters.oldestQueuedAt,
    draws: (ids) => drawSummaries(database.db, ids),
    entrants: (id) => gate.entrantCount(id),
  })
  couponGauges(metrics.registry, figures)
  const watch = new CouponWatch({
    coupons: () => listCoupons(database.db),
    coupon: (id) => findCoupon(database.db, id),
    won: (id) => gate.won(id),
    codes: (id) => countCodes(database.db, id),
    subscribe: (listener) => events.subscribe(listener),
    claim: adapters.claim ?? claimedOnce(),
    logger,
  })
  if (adapters.workersAlive) workerGauge(metrics.registry, adapters.workersAlive)
  const fleet = new ApiFleet({
    read: processFiguresOf(metrics.registry, ISSUE_ROUTE, gateClock),
    store: adapters.fleetStore ?? null,
    onError: (err) => logger.debug({ err }, 'could not publish the dashboard figures'),
  })
  const container: Omit<Container, 'api'> = {
    config,
    logger,
    database,
    reads,
    gate,
    events,
    recorder,
    metrics,
    issues: new IssueService({
      // Only status and stats read through it; the issue path loads through the cache.
      db: reads.db,
      findCoupon: readCoupon,
      gate,
      recorder,
      cache,
      entries: adapters.entries ?? null,
      onOutcome: (id, o) => metrics.countOutcome(id, o),
    }),
    coupons,
    spends: new SpendService({
      db: database.db,
      gate,
      persistDelayMs: config.redis ? config.worker.persistDelayMs : 0,
      // a QUEUED win's instant is the gate's
      now: gateNow,
      onSpent: (couponId) => metrics.spent.inc({ coupon: String(couponId) }),
      metrics,
    }),
    // A public read: the pool apart, like status and stats.
    box: new CouponBox({ db: reads.db, gate, now: gateNow }),
    codes,
    winners: new WinnersExport({
      db: exports.db,
      raw: { sqlite: exports.sqlite, mysql: exports.mysql },
      findCoupon: (id) => findCoupon(database.db, id),
      queuedWins: adapters.queuedWins,
    }),
    exports,
    watch,
    fleet,
    readiness,
    figures,
    workersAlive: adapters.workersAlive,
    gateNow,
    verifyUser: config.jwt ? userVerifier(config.jwt) : null,
    limits,
    startWorker: adapters.startWorker,
    draws,
    drawRecords: new DrawRecords(reads.db),
    feedSignal,
    pump,
    webhookStatuses,
    async close() {
      codes.close()
      watch.stop()
      await draws.stop()
      await pump.stop()
      await fleet.stop()
      await adapters.close()
      await closeDatabases()
    },
  }
  return { ...container, api: apiParts(container) }
}

/** The HTTP API's parts over a container's services. */
function apiParts(c: Omit<Container, 'api'>): ApiParts {
  const shutdown = new ShutdownFlag()
  const overload = new Overload(c.config.http.queueTimeoutMs, (reason) =>
    c.metrics.countShed(reason),
  )
  const pipeline = new IssuePipeline({
    issues: c.issues,
    verifyUser: c.verifyUser,
    limits: c.limits,
    overload,
    closing: shutdown.closing,
  })
  const lane = new IssueFastLane({
    pipeline,
    metrics: c.metrics,
    bodyLimit: BODY_LIMIT_BYTES,
    closing: shutdown.closing,
    trustProxy: c.config.trustProxy,
  })
  const overview = new Overview({
    figures: c.figures,
    readiness: c.readiness,
    processes: () => c.fleet.shares(),
    workersAlive: c.workersAlive,
    mode: c.config.redis ? 'redis' : 'embedded',
    webhooks: webhookOverview(c.webhookStatuses),
  })
  return { shutdown, overload, pipeline, lane, overview }
}

/** The adapters one mode chooses; the services are composed alike over them. */
interface Adapters {
  gate: StockGate
  recorder: WinRecorder | null
  cache: CouponCache | null
  events: CouponEvents
  feedSignal: FeedSignal
  checks: ReadinessChecks
  limits: IssueLimits
  oldestQueuedAt?: (couponId: number) => Promise<number | null>
  /** wins answered but maybe not yet rows (Redis mode); embedded: every win is a row */
  queuedWins: (couponId: number) => Promise<Win[]>
  /** several processes: true for the one that logs an event (see CouponWatch) */
  claim?: (key: string) => Promise<boolean>
  workersAlive?: () => Promise<number>
  /** Redis mode: where every API process publishes its figures */
  fleetStore?: FleetStore
  /** Redis mode: Redis's clock, which judges every window, as this process knows it */
  gateClock?: GateClock
  startWorker?: Container['startWorker']
  /** embedded: writes entries before they are answered */
  entries?: EntryRecorder
  /** how this mode runs the opening draw */
  draw: DrawMode
  /** everything but the database, which closes last */
  close(): Promise<void>
}

const limitsConfig = (config: Readonly<Config>): LimitsConfig => ({
  perIp: config.rateLimitPerIp,
  perUser: config.rateLimitPerUser,
})

async function embeddedAdapters(
  config: Readonly<Config>,
  logger: Logger,
  database: Database,
  metrics: Metrics,
  seeds: DrawSeeds,
): Promise<Adapters> {
  const gate = await restoreMemoryGate(storedCoupons(database.db), seeds)
  const entries = new EntryRecorder(database.db, {
    written: (couponId, userId, pseudonym) => gate.entryWritten(couponId, userId, pseudonym),
    failed: (couponId, userId) => gate.entryFailed(couponId, userId),
  })
  const recorder = new GroupCommitRecorder(database, {
    onError: (err, wins) => logger.error({ err, wins }, 'group commit failed; retrying'),
    onUnwritten: (wins) => logger.error({ wins }, 'stopping with unwritten (unanswered) wins'),
    metrics,
  })
  const events = new MemoryCouponEvents()
  const feedSignal = new MemoryFeedSignal()
  return {
    feedSignal,
    gate,
    recorder,
    // The in-process gate is as fast as a cache would be.
    cache: null,
    queuedWins: async () => [],
    entries,
    draw: embeddedDraws({ db: database.db, gate, entries, metrics }),
    events,
    checks: {},
    limits: memoryIssueLimits(limitsConfig(config)),
    async close() {
      await recorder.close()
      await events.close()
      await feedSignal.close()
      await gate.close()
    },
  }
}

async function redisAdapters(
  config: Readonly<Config>,
  redis: RedisConfig,
  logger: Logger,
  database: Database,
  metrics: Metrics,
  known: KnownCoupons,
  seeds: DrawSeeds,
): Promise<Adapters> {
  const keys = new RedisKeys(redis.keyPrefix)
  const client = createRedis(redis, 'firstcome-api')
  const subscriber = createRedis(redis, 'firstcome-events')
  await connectAll([client, subscriber])
  void logPersistence(client, logger)
  const state = new CouponState({
    client,
    keys,
    source: databaseGateSource(database.db),
    ...couponStateReports(logger, metrics),
  })

  const gate = new RedisStockGate({ state, metrics, seeds })
  const gateClock = new GateClock({
    nodes: () => gateNodesOf(client),
    boundMs: redis.clockSkewBoundMs,
    ...gateClockReports(logger, metrics, redis.clockSkewBoundMs),
  })
  await gateClock.start()
  const events = new RedisCouponEvents(client, subscriber, keys.couponChanged)
  await events.start()
  const feedSignal = new RedisFeedSignal(client, subscriber, `${redis.keyPrefix}events:feed`)
  await feedSignal.start()
  const cache = new CouponCache(limitedRulesOf(database.db, known), {
    gateTime: () => gateClock.time(),
  })
  events.subscribe((id) => (id === null ? cache.clear() : cache.invalidate(id)))
  const workers: WorkerHandle[] = []
  const heartbeats = new Heartbeats(client, `${redis.keyPrefix}workers`)
  return {
    gate,
    recorder: null,
    cache,
    draw: redisDraws({
      db: database.db,
      gate,
      lease: redisDrawLease(client, keys, config.drawLeaseMs),
    }),
    events,
    feedSignal,
    limits: redisIssueLimits(limitsConfig(config), client, redis.keyPrefix, (err) =>
      logger.warn({ err }, 'rate limit store unavailable; request let through'),
    ),
    checks: { gate: () => gate.ping() },
    queuedWins: (couponId) => readQueued(client, keys.coupon(couponId), couponId),
    oldestQueuedAt: (couponId) => oldestQueuedAt(client, keys.coupon(couponId)),
    workersAlive: () => heartbeats.alive(),
    fleetStore: new RedisFleetStore(client, redis.keyPrefix),
    gateClock,
    claim: redisClaims(client, `${redis.keyPrefix}logged:`),
    async startWorker() {
      const workerClient = createRedis(redis, 'firstcome-worker')
      await connectAll([workerClient])
      const worker = new RedisStreamWorker({
        client: workerClient,
        keys,
        db: database.db,
        logger,
        metrics,
        ensureLoaded: (couponId) => state.ensureLoaded(couponId),
        markBehind: (couponId) => state.markBehind(couponId),
        persist: persistKindFor(config.dialect),
        heartbeats: new Heartbeats(workerClient, `${redis.keyPrefix}workers`),
        ...config.worker,
      }).start()
      const handle = {
        readiness: new Readiness({
          queue: async () => {
            await workerClient.ping()
          },
          database: () => database.ping(),
        }),
        async stop() {
          await worker.stop()
          await closeRedis(workerClient)
        },
      }
      workers.push(handle)
      return handle
    },
    async close() {
      gateClock.stop()
      await Promise.all(workers.map((w) => w.stop()))
      await feedSignal.close()
      await events.close()
      await gate.close()
    },
  }
}
