/**
 * Creating the database DATABASE_URL names, for tools that own their database
 * (the bench's throw-away `fc_bench`). The service itself never creates one: its
 * user usually may not, and a missing database is a deployment mistake to see.
 * SQLite creates its file on open.
 */
import { createRequire } from 'node:module'
import type * as Mysql2 from 'mysql2/promise'
import type Pg from 'pg'
import type { Dialect } from '../config.js'

const require = createRequire(import.meta.url)

/** The database's name in a postgres:// or mysql:// URL. */
export function databaseName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.replace(/^\/+/, ''))
  if (!name) throw new Error(`no database name in ${redact(url)}`)
  return name
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  const u = new URL(url)
  if (u.password) u.password = '***'
  return u.href
}

/** The command that creates the database by hand, for a message. */
export function createDatabaseCommand(url: string, dialect: Dialect): string | null {
  if (dialect === 'sqlite') return null
  const name = databaseName(url)
  const u = new URL(url)
  const host = `-h ${u.hostname}${u.port ? ` ${dialect === 'postgres' ? '-p' : '-P'} ${u.port}` : ''}`
  const user = u.username ? ` -u ${decodeURIComponent(u.username)}` : ''
  return dialect === 'postgres'
    ? `createdb ${host}${user.replace('-u', '-U')} ${name}`
    : `mysql ${host}${user} -e 'create database \`${name}\` character set utf8mb4'`
}

/** SQLSTATE 3D000 (PostgreSQL), ER_BAD_DB_ERROR (MySQL): the named database does not exist. */
function isMissingDatabase(err: unknown): boolean {
  for (
    let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (e.code === '3D000' || e.code === 'ER_BAD_DB_ERROR') return true
    e = e.cause as typeof e
  }
  return false
}

/** For a start that failed on a database that does not exist: the command that creates it. */
export function missingDatabaseHint(err: unknown, url: string, dialect: Dialect): string | null {
  if (!isMissingDatabase(err)) return null
  const command = createDatabaseCommand(url, dialect)
  return command && `create the database first: ${command}`
}

/**
 * Creates the database if it does not exist, connecting with the URL's own user
 * to the server's maintenance database (PostgreSQL: `postgres`; MySQL: none).
 * Resolves true when it created it.
 */
export async function createDatabaseIfMissing(url: string, dialect: Dialect): Promise<boolean> {
  if (dialect === 'sqlite') return false
  const name = databaseName(url)
  if (dialect === 'postgres') {
    const pg = require('pg') as typeof Pg
    const admin = new URL(url)
    admin.pathname = '/postgres'
    const client = new pg.Client({ connectionString: admin.href })
    await client.connect()
    try {
      const found = await client.query('select 1 from pg_database where datname = $1', [name])
      if (found.rowCount) return false
      await client.query(`create database ${client.escapeIdentifier(name)}`)
      return true
    } catch (err) {
      // Another process created it between the look and the create.
      if ((err as { code?: string }).code === '42P04') return false
      throw err
    } finally {
      await client.end()
    }
  }
  const mysql = require('mysql2/promise') as typeof Mysql2
  const admin = new URL(url)
  admin.pathname = '/'
  const conn = await mysql.createConnection(admin.href)
  try {
    const [result] = await conn.query(
      `create database if not exists ${conn.escapeId(name)} character set utf8mb4`,
    )
    return (result as Mysql2.ResultSetHeader).warningStatus === 0
  } finally {
    await conn.end()
  }
}
