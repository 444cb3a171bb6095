/**
 * Runs the ordered migrations at start. Kysely's Migrator records what ran and
 * takes a lock (advisory lock on PostgreSQL, GET_LOCK on MySQL), so any number of
 * processes may start at once. Before it, the processes take turns on a lock of
 * our own: the Migrator creates its tables and its lock row before it locks, and
 * processes racing there fail statements it then forgives, each of which
 * PostgreSQL logs as a duplicate-key ERROR. In turn, each finds them made.
 */
import { type Kysely, type Migration, Migrator, sql } from 'kysely'
import type { Dialect } from '../config.js'
import { initial } from './migrations/001-initial.js'
import { orderId } from './migrations/002-order-id.js'
import { rankGuard } from './migrations/003-rank-guard.js'
import { requestId } from './migrations/004-request-id.js'
import { draw } from './migrations/005-draw.js'
import { couponCodes } from './migrations/006-coupon-codes.js'
import { events } from './migrations/007-events.js'
import { codesWithoutCouponKey } from './migrations/008-codes-without-coupon-key.js'

export function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '001-initial': initial(dialect),
    '002-order-id': orderId(dialect),
    '003-rank-guard': rankGuard(dialect),
    '004-request-id': requestId(dialect),
    '005-draw': draw(dialect),
    '006-coupon-codes': couponCodes(dialect),
    '007-events': events(dialect),
    '008-codes-without-coupon-key': codesWithoutCouponKey(dialect),
  }
}

/** our own session lock's key (PostgreSQL: an advisory lock id; MySQL: a GET_LOCK name) */
const LOCK_ID = 7_356_112_093
const LOCK_NAME = 'firstcome_migrate'
/** MySQL's GET_LOCK waits this long (s) for the process ahead to finish */
const LOCK_WAIT_S = 600

// biome-ignore lint/suspicious/noExplicitAny: Kysely's Migrator is typed over Kysely<any>
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<void> {
  // SQLite: no server log, and one writer at a time anyway.
  if (dialect === 'sqlite') return migrate(db, dialect)
  await db.connection().execute(async (conn) => {
    if (dialect === 'postgres') await sql`select pg_advisory_lock(${LOCK_ID})`.execute(conn)
    else {
      const { rows } = await sql<{
        got: number | null
      }>`select get_lock(${LOCK_NAME}, ${LOCK_WAIT_S}) as got`.execute(conn)
      if (Number(rows[0]?.got) !== 1) throw new Error('timed out waiting for the migration lock')
    }
    try {
      await migrate(conn, dialect)
    } finally {
      if (dialect === 'postgres') await sql`select pg_advisory_unlock(${LOCK_ID})`.execute(conn)
      else await sql`select release_lock(${LOCK_NAME})`.execute(conn)
    }
  })
}

// biome-ignore lint/suspicious/noExplicitAny: as above
async function migrate(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations(dialect) },
    // Numbers are reserved ahead for work in progress: a database that already ran
    // 004 and 006 still takes 003 when it arrives. Each migration stands alone.
    allowUnorderedMigrations: true,
  })
  const { error, results } = await migrator.migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? ''} failed`, { cause: error })
  }
}
