/**
 * The order a coupon was spent on (`coupon_issues.order_id`, null while unused;
 * `date_used` is the original's column for when), and an index on `user_id` for
 * the user's coupon box, which would otherwise scan every row of every coupon.
 *
 * Applies to a database created by any earlier release, rows and all. MySQL has
 * no transactional DDL and neither it nor SQLite has `ADD COLUMN IF NOT EXISTS`
 * (MariaDB and PostgreSQL do), so each step looks before it acts: a run cut short
 * is safe to run again.
 */
import { type ColumnDataType, type Expression, type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

const INDEX = 'idx_coupon_issues_user'

/** Like user_id: ASCII by contract, and on MySQL compared byte for byte. */
const orderIdType: Record<Dialect, ColumnDataType | Expression<unknown>> = {
  sqlite: 'varchar(64)',
  postgres: 'varchar(64)',
  mysql: sql`varchar(64) character set ascii collate ascii_bin`,
}

async function hasColumn(db: Kysely<unknown>, table: string, column: string) {
  const tables = await db.introspection.getTables()
  return tables.some((t) => t.name === table && t.columns.some((c) => c.name === column))
}

async function hasIndex(db: Kysely<unknown>, dialect: Dialect, name: string) {
  const query =
    dialect === 'sqlite'
      ? sql`select 1 from sqlite_master where type = 'index' and name = ${name}`
      : dialect === 'postgres'
        ? sql`select 1 from pg_indexes where schemaname = current_schema() and indexname = ${name}`
        : sql`select 1 from information_schema.statistics
              where table_schema = database() and index_name = ${name}`
  const { rows } = await query.execute(db)
  return rows.length > 0
}

export function orderId(dialect: Dialect) {
  return {
    async up(db: Kysely<unknown>) {
      if (!(await hasColumn(db, 'coupon_issues', 'order_id'))) {
        await db.schema
          .alterTable('coupon_issues')
          .addColumn('order_id', orderIdType[dialect])
          .execute()
      }
      if (!(await hasIndex(db, dialect, INDEX))) {
        await db.schema.createIndex(INDEX).on('coupon_issues').column('user_id').execute()
      }
    },
  }
}
