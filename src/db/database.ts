/**
 * Opens the database named by DATABASE_URL as a Kysely instance. The dialect
 * differences the repositories must know are few: how instants are bound (see
 * schema.ts), and statements spelled per dialect (issues-repo.ts), which ask
 * `dialectOf`. Where Kysely has a capability flag (`supportsReturning`), the
 * repositories ask that instead.
 */
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  type Dialect as KyselyDialect,
  MysqlAdapter,
  MysqlDialect,
  type MysqlPool,
  type MysqlPoolConnection,
  PostgresAdapter,
  type PostgresCursorConstructor,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  sql,
} from 'kysely'
import type * as Mysql2 from 'mysql2'
import type Pg from 'pg'
import type { DbTimeouts, Dialect } from '../config.js'
import { classifiedDialect, WriteHealth } from './classified-dialect.js'
import { type NodeSqliteDatabase, openNodeSqlite } from './node-sqlite.js'
import type { Tables } from './schema.js'
import { SqliteDatesPlugin } from './sqlite-dates.js'

export type Db = Kysely<Tables>

export interface Database {
  db: Db
  dialect: Dialect
  /** SQLite: the connection Kysely drives, for reads it cannot make (readArrays) */
  sqlite?: NodeSqliteDatabase
  /** MySQL: the pool Kysely drives, for reads it cannot make (a row stream read in batches) */
  mysql?: Mysql2.Pool
  /**
   * Resolves while the database answers and takes writes: it fails, too, while
   * writes are refused for want of room or permission (see WriteHealth), which
   * a `select 1` alone would not show.
   */
  ping(): Promise<void>
  close(): Promise<void>
}

export interface DatabaseOptions {
  poolSize?: number
  /** none: calls wait as long as the server lets them (tools, tests' own connections) */
  timeouts?: DbTimeouts
  /** what the pool is for, in the server's view of its sessions (application_name) */
  role?: string
  /** SQLite: the connection's page cache, KiB (also what a sort holds before it spills to disk) */
  sqliteCacheKiB?: number
}

/**
 * The client-side bound on a query is the server's statement timeout plus this:
 * the server cancels first and says why; the client's bound is for a server or a
 * network that no longer answers at all.
 */
const CLIENT_MARGIN_MS = 1000

/** The dialect of a Kysely instance or transaction, for a statement spelled per dialect. */
export function dialectOf(db: Db): Dialect {
  const adapter = db.getExecutor().adapter
  if (adapter instanceof PostgresAdapter) return 'postgres'
  if (adapter instanceof MysqlAdapter) return 'mysql'
  return 'sqlite'
}

/** `sqlite:./data/x.sqlite`, `sqlite:///abs/x.sqlite`, `sqlite::memory:` → a file path */
export function sqlitePath(url: string): string {
  const rest = url.replace(/^(sqlite|file):/i, '')
  if (rest === ':memory:') return rest
  return rest.startsWith('//') ? rest.slice(2) : rest
}

// A driver is loaded when its dialect is first opened: a process on PostgreSQL
// does not carry mysql2 or pg in its resident memory.
const require = createRequire(import.meta.url)

// BIGINT (int8) and NUMERIC come back from pg as strings; ids and counts here fit
// in a double, so read them as numbers.
const INT8_OID = 20
function pgTypes(pg: typeof Pg): Pg.CustomTypesConfig {
  return {
    getTypeParser(oid: number, format?: 'text' | 'binary') {
      if (oid === INT8_OID) return (v: string) => Number(v)
      return pg.types.getTypeParser(oid, format)
    },
  } as Pg.CustomTypesConfig
}

/**
 * SQLite rolls a transaction back by itself on some errors (SQLITE_FULL,
 * SQLITE_IOERR, SQLITE_NOMEM, …). Kysely then sends ROLLBACK, which fails with
 * "cannot rollback - no transaction is active", and that error would replace the
 * one that says what happened. This driver rolls back only an open transaction.
 */
class SqliteDriverKeepingCause extends SqliteDriver {
  readonly #database: NodeSqliteDatabase

  constructor(database: NodeSqliteDatabase) {
    super({ database })
    this.#database = database
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#database.inTransaction()) await super.rollbackTransaction(connection)
  }
}

class SqliteDialectKeepingCause extends SqliteDialect {
  readonly #database: NodeSqliteDatabase

  constructor(database: NodeSqliteDatabase) {
    super({ database })
    this.#database = database
  }

  override createDriver(): Driver {
    return new SqliteDriverKeepingCause(this.#database)
  }
}

function openSqlite(
  url: string,
  options: DatabaseOptions,
): { dialect: KyselyDialect; database: NodeSqliteDatabase } {
  const timeouts = options.timeouts
  const path = sqlitePath(url)
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  // Node's own SQLite: no native module to build at install (db/node-sqlite.ts).
  const database = openNodeSqlite(path)
  database.exec('pragma journal_mode = WAL')
  // FULL: a committed win survives power loss, not only a killed process.
  database.exec('pragma synchronous = FULL')
  database.exec(`pragma busy_timeout = ${timeouts?.lockMs ?? 5000}`)
  database.exec('pragma foreign_keys = ON')
  if (options.sqliteCacheKiB) database.exec(`pragma cache_size = -${options.sqliteCacheKiB}`)
  return { dialect: new SqliteDialectKeepingCause(database), database }
}

function openPostgres(url: string, poolSize: number, options: DatabaseOptions): KyselyDialect {
  const pg = require('pg') as typeof Pg
  const t = options.timeouts
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // Also the bound on waiting for a free client of a full pool.
    connectionTimeoutMillis: t?.connectMs ?? 5000,
    types: pgTypes(pg),
    application_name: `firstcome ${options.role ?? 'tool'} ${process.pid}`,
    ...(t && {
      // Sent at connect, so they hold for every statement of the session.
      statement_timeout: t.statementMs,
      lock_timeout: t.lockMs,
      // A client frozen inside a transaction (a stopped process, a lost network)
      // would hold its row locks for ever; the server ends its session instead.
      idle_in_transaction_session_timeout: t.idleTransactionMs,
      query_timeout: t.statementMs + CLIENT_MARGIN_MS,
    }),
  })
  // An idle client losing its connection (server restart) must not crash the process.
  pool.on('error', () => {})
  // Nor one in use: pg-pool drops its idle listener while a client is checked out,
  // and pg then emits 'error' on the client besides failing its query (which is
  // what the caller sees and handles). Unheard, that event is an uncaught exception.
  pool.on('connect', (client) => {
    client.on('error', () => {})
  })
  // pg-cursor: what Kysely's `.stream()` reads through on PostgreSQL (the export).
  const cursor = require('pg-cursor') as PostgresCursorConstructor
  return new PostgresDialect({ pool, cursor })
}

function openMysql(
  url: string,
  poolSize: number,
  timeouts?: DbTimeouts,
): { dialect: KyselyDialect; pool: Mysql2.Pool; end: () => Promise<void> } {
  const { createPool } = require('mysql2') as typeof Mysql2
  const pool = createPool({
    uri: url,
    connectionLimit: poolSize,
    connectTimeout: timeouts?.connectMs ?? 5000,
    // DATETIME(6) columns hold UTC; mysql2 converts Dates to and from UTC.
    timezone: 'Z',
    charset: 'utf8mb4',
    supportBigNumbers: true,
    // affectedRows must count rows actually inserted, not rows matched, for the
    // idempotent insert to report how many wins were new.
    flags: ['-FOUND_ROWS'],
  })
  // Kysely ends the pool on destroy only once it has used it itself, and the
  // export may have read through the pool alone: the database's close ends it
  // too, once whoever asks first.
  let ended: Promise<void> | undefined
  const end = () =>
    (ended ??= new Promise<void>((resolve, reject) =>
      pool.end((err) => (err ? reject(err) : resolve())),
    ))
  const endFor = (callback: (error: unknown) => void) => {
    end().then(() => callback(null), callback)
  }
  if (!timeouts) {
    const kyselyPool: MysqlPool = { getConnection: (cb) => pool.getConnection(cb), end: endFor }
    return { dialect: new MysqlDialect({ pool: kyselyPool }), pool, end }
  }
  const dialect = new MysqlDialect({
    pool: { ...boundedMysqlPool(pool, timeouts), end: endFor },
    onCreateConnection: (connection) => setMysqlTimeouts(connection, timeouts),
  })
  return { dialect, pool, end }
}

/** The session's timeouts, named as the server (MariaDB or MySQL) names them. */
async function setMysqlTimeouts(connection: DatabaseConnection, t: DbTimeouts): Promise<void> {
  const version = await connection.executeQuery<{ v: string }>(
    CompiledQuery.raw('select version() as v'),
  )
  const mariadb = /mariadb/i.test(version.rows[0]?.v ?? '')
  const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000))
  // lock_wait_timeout bounds table (metadata) locks, innodb_lock_wait_timeout row locks.
  const settings = [
    `lock_wait_timeout = ${seconds(t.lockMs)}`,
    `innodb_lock_wait_timeout = ${seconds(t.lockMs)}`,
    ...(mariadb
      ? [
          `max_statement_time = ${t.statementMs / 1000}`,
          `idle_transaction_timeout = ${seconds(t.idleTransactionMs)}`,
        ]
      : // MySQL bounds only SELECTs; the client-side bound covers the rest.
        [`max_execution_time = ${t.statementMs}`]),
  ]
  await connection.executeQuery(CompiledQuery.raw(`set session ${settings.join(', ')}`))
}

/**
 * mysql2's pool waits for a free connection without end and its queries have no
 * default timeout: both are bounded here, as pg does by itself.
 */
function boundedMysqlPool(pool: Mysql2.Pool, t: DbTimeouts): MysqlPool {
  const queryTimeout = t.statementMs + CLIENT_MARGIN_MS
  // Kysely keeps per-connection state keyed by the object it is given: one wrapper
  // per connection, for the connection's life.
  const wrappers = new WeakMap<Mysql2.PoolConnection, MysqlPoolConnection>()
  const wrap = (raw: Mysql2.PoolConnection): MysqlPoolConnection => {
    let wrapper = wrappers.get(raw)
    if (!wrapper) {
      const query = (
        sqlText: string,
        values: Mysql2.QueryOptions['values'],
        callback?: (err: Mysql2.QueryError | null, result: Mysql2.QueryResult) => void,
      ) => raw.query({ sql: sqlText, values, timeout: queryTimeout }, callback)
      wrapper = { query: query as MysqlPoolConnection['query'], release: () => raw.release() }
      wrappers.set(raw, wrapper)
    }
    return wrapper
  }
  return {
    getConnection(callback) {
      let waiting = true
      const timer = setTimeout(() => {
        waiting = false
        callback(
          new Error('timeout exceeded when waiting for a database connection'),
          undefined as never,
        )
      }, t.connectMs)
      pool.getConnection((err, raw) => {
        if (!waiting) {
          // Came too late: the caller has been answered already.
          if (!err) raw.release()
          return
        }
        waiting = false
        clearTimeout(timer)
        callback(err, err ? (raw as never) : wrap(raw))
      })
    },
    end: (callback) => pool.end(callback),
  }
}

/**
 * The public reads' handle (status, stats, a coupon): a pool apart, so a slow
 * read starves only its kind. On SQLite, the main handle (its close is the main's
 * to do): one connection, and nothing waits for a lock inside one process.
 */
export function openReadsDatabase(
  url: string,
  dialect: Dialect,
  options: Pick<DatabaseOptions, 'poolSize' | 'timeouts'>,
  main: Database,
): Database {
  if (dialect === 'sqlite') return { ...main, close: async () => {} }
  return openDatabase(url, dialect, { ...options, role: 'reads' })
}

/**
 * The database handle of the winners' export: a download holds its cursor, and
 * its connection, as long as the client takes to read it, so it gets a small
 * pool of its own, without the event-day statement bounds (a slow download is
 * not a stuck statement; an idle one is cut by the HTTP layer). On SQLite, a
 * connection of its own: WAL lets it read while the service writes, where the
 * main connection would be held for the whole download.
 */
export function openExportDatabase(url: string, dialect: Dialect, main: Database): Database {
  if (dialect === 'sqlite' && sqlitePath(url) === ':memory:') {
    // The main connection, then, through Kysely only: a read past Kysely
    // (readArrays) would not wait for a transaction open on it.
    const { sqlite: _, ...shared } = main
    return { ...shared, close: async () => {} }
  }
  return openDatabase(url, dialect, {
    poolSize: EXPORT_POOL_SIZE,
    role: 'export',
    sqliteCacheKiB: EXPORT_SQLITE_CACHE_KIB,
  })
}

/** Exports that may stream at once per process (a further one waits for a connection). */
export const EXPORT_POOL_SIZE = 2
/**
 * The export's SQLite connection reads its pages off the (coupon_id, rank)
 * index once each: a small page cache is enough, and a million rows cost the
 * process a few MB of it, not the file's size.
 */
const EXPORT_SQLITE_CACHE_KIB = 2048

export function openDatabase(
  url: string,
  dialect: Dialect,
  options: DatabaseOptions = {},
): Database {
  const poolSize = options.poolSize ?? 10
  const sqlite = dialect === 'sqlite' ? openSqlite(url, options) : null
  const mysql = dialect === 'mysql' ? openMysql(url, poolSize, options.timeouts) : null
  const driver = sqlite?.dialect ?? mysql?.dialect ?? openPostgres(url, poolSize, options)
  const health = new WriteHealth()
  const db = new Kysely<Tables>({
    dialect: classifiedDialect(driver, health),
    plugins: dialect === 'sqlite' ? [new SqliteDatesPlugin()] : [],
  })
  return {
    db,
    dialect,
    ...(sqlite && { sqlite: sqlite.database }),
    ...(mysql && { mysql: mysql.pool }),
    async ping() {
      await sql`select 1`.execute(db)
      const failure = health.failure
      if (failure) throw failure
    },
    async close() {
      await db.destroy()
      await mysql?.end()
    },
  }
}
