/**
 * The id of the request that won each row (`coupon_issues.request_id`): the
 * client's Idempotency-Key, or the id the service gave the request. A gate
 * rebuilt from the rows (embedded mode at every start, Redis mode after Redis
 * lost a coupon's state) reads it back, so a retry with the same key still gets
 * its 201 with the same rank. Null on rows written before it existed.
 *
 * Applies to a database of any earlier release; MySQL and SQLite have no `ADD
 * COLUMN IF NOT EXISTS`, so it looks before it acts and a run cut short is safe
 * to run again.
 */
import type { ColumnDataType, Expression, Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Dialect } from '../../config.js'

/** An Idempotency-Key is ASCII by contract, and compared byte for byte (on MySQL too). */
const requestIdType: Record<Dialect, ColumnDataType | Expression<unknown>> = {
  sqlite: 'varchar(64)',
  postgres: 'varchar(64)',
  mysql: sql`varchar(64) character set ascii collate ascii_bin`,
}

export function requestId(dialect: Dialect) {
  return {
    async up(db: Kysely<unknown>) {
      const tables = await db.introspection.getTables()
      const issues = tables.find((t) => t.name === 'coupon_issues')
      if (issues?.columns.some((c) => c.name === 'request_id')) return
      await db.schema
        .alterTable('coupon_issues')
        .addColumn('request_id', requestIdType[dialect])
        .execute()
    },
  }
}
