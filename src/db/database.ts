/**
 * Opens the database named by DATABASE_URL as a Kysely instance. The dialect
 * differences the repositories must know are few and live here: how instants are
 * bound (see schema.ts) and how an idempotent insert is spelled (issues-repo.ts).
 */
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import { Kysely, MysqlDialect, PostgresDialect, SqliteDialect, sql } from 'kysely'
import type * as Mysql2 from 'mysql2'
import type Pg from 'pg'
import type { Dialect } from '../config.js'
import type { Tables } from './schema.js'
import { SqliteDatesPlugin } from './sqlite-dates.js'

export type Db = Kysely<Tables>

export interface Database {
  db: Db
  dialect: Dialect
  ping(): Promise<void>
  close(): Promise<void>
}

export interface DatabaseOptions {
  poolSize?: number
}

/** `sqlite:./data/x.sqlite`, `sqlite:///abs/x.sqlite`, `sqlite::memory:` → a file path */
export function sqlitePath(url: string): string {
  const rest = url.replace(/^(sqlite|file):/i, '')
  if (rest === ':memory:') return rest
  return rest.startsWith('//') ? rest.slice(2) : rest
}

// A driver is loaded when its dialect is first opened: a process on PostgreSQL
// does not carry mysql2 and better-sqlite3 (about 25 MB of resident memory).
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

function openSqlite(url: string): Kysely<Tables> {
  const SqliteDatabase = require('better-sqlite3') as typeof BetterSqlite3
  const path = sqlitePath(url)
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const database = new SqliteDatabase(path)
  database.pragma('journal_mode = WAL')
  // FULL: a committed win survives power loss, not only a killed process.
  database.pragma('synchronous = FULL')
  database.pragma('busy_timeout = 5000')
  database.pragma('foreign_keys = ON')
  return new Kysely<Tables>({
    dialect: new SqliteDialect({ database }),
    plugins: [new SqliteDatesPlugin()],
  })
}

function openPostgres(url: string, poolSize: number): Kysely<Tables> {
  const pg = require('pg') as typeof Pg
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: 5000,
    types: pgTypes(pg),
  })
  // An idle client losing its connection (server restart) must not crash the process.
  pool.on('error', () => {})
  // Nor one in use: pg-pool drops its idle listener while a client is checked out,
  // and pg then emits 'error' on the client besides failing its query (which is
  // what the caller sees and handles). Unheard, that event is an uncaught exception.
  pool.on('connect', (client) => {
    client.on('error', () => {})
  })
  return new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) })
}

function openMysql(url: string, poolSize: number): Kysely<Tables> {
  const { createPool } = require('mysql2') as typeof Mysql2
  const pool = createPool({
    uri: url,
    connectionLimit: poolSize,
    connectTimeout: 5000,
    // DATETIME(6) columns hold UTC; mysql2 converts Dates to and from UTC.
    timezone: 'Z',
    charset: 'utf8mb4',
    supportBigNumbers: true,
    // affectedRows must count rows actually inserted, not rows matched, for the
    // idempotent insert to report how many wins were new.
    flags: ['-FOUND_ROWS'],
  })
  return new Kysely<Tables>({ dialect: new MysqlDialect({ pool }) })
}

export function openDatabase(
  url: string,
  dialect: Dialect,
  options: DatabaseOptions = {},
): Database {
  const poolSize = options.poolSize ?? 10
  const db =
    dialect === 'sqlite'
      ? openSqlite(url)
      : dialect === 'postgres'
        ? openPostgres(url, poolSize)
        : openMysql(url, poolSize)
  return {
    db,
    dialect,
    async ping() {
      await sql`select 1`.execute(db)
    },
    async close() {
      await db.destroy()
    },
  }
}
