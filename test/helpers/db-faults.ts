/**
 * Faults on a test's own PostgreSQL database, made from outside the service: the
 * database turned read-only (as a failover to a standby, a full disk or an
 * operator would), and its sessions terminated so the change reaches every
 * connection at once. Only the database named in the URL is touched. And how
 * many sessions wait on a lock, for a test that holds one.
 */
import { sql } from 'kysely'
import pg from 'pg'
import type { Dialect } from '../../src/config.js'
import type { Db } from '../../src/db/database.js'
import { SERVICES } from './services.js'

const PG_ADMIN = `postgres://postgres@${SERVICES.postgres.host}:${SERVICES.postgres.port}/postgres`

function nameOf(databaseUrl: string): string {
  const name = new URL(databaseUrl).pathname.slice(1)
  if (!/^fc_test_[0-9a-f]+$/.test(name)) throw new Error(`not a test database: ${name}`)
  return name
}

async function asAdmin(statements: (name: string) => string[], databaseUrl: string) {
  const client = new pg.Client({ connectionString: PG_ADMIN })
  await client.connect()
  try {
    for (const s of statements(nameOf(databaseUrl))) await client.query(s)
  } finally {
    await client.end()
  }
}

const terminate = (name: string) =>
  `select pg_terminate_backend(pid) from pg_stat_activity
   where datname = '${name}' and pid <> pg_backend_pid()`

/** Every new transaction of the database is read-only; open sessions are ended. */
export function setReadOnly(databaseUrl: string): Promise<void> {
  return asAdmin(
    (name) => [`alter database ${name} set default_transaction_read_only = on`, terminate(name)],
    databaseUrl,
  )
}

/** Writable again; the read-only sessions are ended so none lingers. */
export function resetReadOnly(databaseUrl: string): Promise<void> {
  return asAdmin(
    (name) => [`alter database ${name} reset default_transaction_read_only`, terminate(name)],
    databaseUrl,
  )
}

/**
 * How often a test may read MySQL/MariaDB's `information_schema.innodb_trx`.
 * InnoDB refreshes that table's cache only once nobody has read it for 0.1 s,
 * so pollers reading it more often than that, in one file or in several at
 * once, can see the same old rows for as long as they keep polling.
 */
export const INNODB_TRX_POLL_MS = 250

/**
 * How many sessions of the database `db` is connected to wait on a lock: a row
 * lock or a table lock (PostgreSQL, MySQL/MariaDB). A test that holds a lock
 * waits for this instead of for a fixed time.
 */
export async function lockWaits(db: Db, dialect: Dialect): Promise<number> {
  if (dialect === 'postgres') {
    const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`.execute(db)
    return Number(rows[0]?.n ?? 0)
  }
  if (dialect === 'mysql') {
    const { rows } = await sql<{ n: string }>`select count(*) as n
      from information_schema.processlist p
      where p.db = database() and (p.state like 'Waiting for%lock'
        or p.id in (select trx_mysql_thread_id from information_schema.innodb_trx
                    where trx_state = 'LOCK WAIT'))`.execute(db)
    return Number(rows[0]?.n ?? 0)
  }
  throw new Error(`no lock waits to read on ${dialect}`)
}
