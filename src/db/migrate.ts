/**
 * Runs the ordered migrations at start. Kysely's Migrator records what ran and
 * takes a lock (advisory lock on PostgreSQL, GET_LOCK on MySQL), so any number of
 * processes may start at once.
 */
import { type Kysely, type Migration, Migrator } from 'kysely'
import type { Dialect } from '../config.js'
import { initial } from './migrations/001-initial.js'
import { orderId } from './migrations/002-order-id.js'
import { requestId } from './migrations/004-request-id.js'

export function migrations(dialect: Dialect): Record<string, Migration> {
  return {
    '001-initial': initial(dialect),
    '002-order-id': orderId(dialect),
    '004-request-id': requestId(dialect),
  }
}

// biome-ignore lint/suspicious/noExplicitAny: Kysely's Migrator is typed over Kysely<any>
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations(dialect) },
  })
  const { error, results } = await migrator.migrateToLatest()
  const failed = results?.find((r) => r.status === 'Error')
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? ''} failed`, { cause: error })
  }
}
