/**
 * A full disk, made for one test's own database only:
 * - a small tmpfs the test mounts and unmounts (root only): SQLite's file on it,
 *   or a PostgreSQL tablespace on it holding the test database's coupon_issues;
 *   `grow()` remounts it larger, as an operator freeing space would;
 * - MySQL/MariaDB: not a filesystem. InnoDB that runs out of space in a
 *   tablespace aborts the whole server ("[FATAL] InnoDB: Error (Out of disk
 *   space) in rollback"), every other test's database with it. Instead a
 *   trigger makes every write of coupon_issues also write a MEMORY table held
 *   at max_heap_table_size and filled: the server refuses the write with its own
 *   ER_RECORD_FILE_FULL (1114), as a full disk or table makes it do, and the
 *   service's tables stay transactional. `free()` takes the trigger away.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { SERVICES } from './services.js'

const run = promisify(execFile)

/** Why a tmpfs cannot be mounted here, or false. */
export async function skipUnlessMount(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root'
  try {
    const dir = mkdtempSync(join(tmpdir(), 'firstcome-tmpfs-'))
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir])
      await run('umount', [dir])
    } finally {
      rmdirSync(dir)
    }
    return false
  } catch (err) {
    return `cannot mount a tmpfs: ${String(err)}`
  }
}

export interface Tmpfs {
  dir: string
  /** remounts it with room to spare (the data stays) */
  grow(): Promise<void>
  unmount(): Promise<void>
}

/** A tmpfs of `sizeKb` on a fresh directory, owned by `owner` (a user name). */
export async function mountTmpfs(sizeKb: number, owner?: string): Promise<Tmpfs> {
  const dir = mkdtempSync(join(tmpdir(), 'firstcome-tmpfs-'))
  let ids = ''
  if (owner) {
    const uid = (await run('id', ['-u', owner])).stdout.trim()
    const gid = (await run('id', ['-g', owner])).stdout.trim()
    ids = `,uid=${uid},gid=${gid}`
  }
  await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k,mode=700${ids}`, 'tmpfs', dir])
  return {
    dir,
    async grow() {
      await run('mount', ['-o', 'remount,size=64m', dir])
    },
    async unmount() {
      await run('umount', [dir])
      rmdirSync(dir)
    },
  }
}

const PG_ADMIN = `postgres://postgres@${SERVICES.postgres.host}:${SERVICES.postgres.port}/postgres`

async function pgQuery(url: string, statements: string[]) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    for (const s of statements) await client.query(s)
  } finally {
    await client.end()
  }
}

export interface PgFullDisk {
  grow(): Promise<void>
  /** after the test database is dropped: drops the tablespace, unmounts */
  release(): Promise<void>
}

/**
 * Moves the test database's coupon_issues (its heap; the indexes stay) to a
 * tablespace on a tmpfs with `roomKb` to spare beyond the table: once the table
 * fills it, every write that needs a new page fails with SQLSTATE 53100.
 */
export async function pgTableOnSmallDisk(databaseUrl: string, roomKb: number): Promise<PgFullDisk> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  const { rows } = await client
    .query<{ bytes: string }>(`select pg_table_size('coupon_issues') as bytes`)
    .finally(() => client.end())
  const fs = await mountTmpfs(Math.ceil(Number(rows[0]?.bytes ?? 0) / 1024) + roomKb, 'postgres')
  const tablespace = `fc_test_ts_${randomBytes(4).toString('hex')}`
  try {
    await pgQuery(PG_ADMIN, [`create tablespace ${tablespace} location '${fs.dir}'`])
    await pgQuery(databaseUrl, [`alter table coupon_issues set tablespace ${tablespace}`])
  } catch (err) {
    await pgQuery(PG_ADMIN, [`drop tablespace if exists ${tablespace}`]).catch(() => {})
    await fs.unmount()
    throw err
  }
  return {
    grow: () => fs.grow(),
    async release() {
      await pgQuery(PG_ADMIN, [`drop tablespace if exists ${tablespace}`])
      await fs.unmount()
    },
  }
}

export interface MysqlFullTable {
  /** drops the triggers and the MEMORY table: writes pass again */
  free(): Promise<void>
}

/** See the file's header: every write of coupon_issues refused with 1114 until `free()`. */
export async function mysqlTableFull(databaseUrl: string): Promise<MysqlFullTable> {
  const conn = await mysql.createConnection(databaseUrl)
  try {
    await conn.query('set session max_heap_table_size = 16384')
    await conn.query('create table fc_full (v char(255)) engine = memory')
    for (const event of ['insert', 'update'])
      await conn.query(
        `create trigger fc_full_${event} before ${event} on coupon_issues
         for each row insert into fc_full values (new.user_id)`,
      )
    // Fill it up to the last row it takes.
    for (;;) {
      try {
        await conn.query("insert into fc_full values ('filler')")
      } catch (err) {
        if ((err as { errno?: number }).errno === 1114) break
        throw err
      }
    }
  } finally {
    await conn.end()
  }
  return {
    async free() {
      const c = await mysql.createConnection(databaseUrl)
      try {
        await c.query('drop trigger if exists fc_full_insert')
        await c.query('drop trigger if exists fc_full_update')
        await c.query('drop table if exists fc_full')
      } finally {
        await c.end()
      }
    },
  }
}
