/**
 * coupons and coupon_issues, on SQLite, PostgreSQL and MySQL/MariaDB alike.
 * Every statement is IF NOT EXISTS: MySQL has no transactional DDL, so a migration
 * cut short must be safe to run again.
 */
import { type ColumnDataType, type Expression, type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

type Type = ColumnDataType | Expression<unknown>

interface Types {
  id: Type
  ref: Type
  instant: Type
  userId: Type
}

const types: Record<Dialect, Types> = {
  sqlite: { id: 'integer', ref: 'integer', instant: 'text', userId: 'text' },
  postgres: { id: 'bigserial', ref: 'bigint', instant: 'timestamptz', userId: 'varchar(64)' },
  // userId is ASCII by contract; ascii_bin keeps "Abc" and "abc" two users, as
  // they are in Redis and the other databases (utf8mb4's default collation would
  // fold them together and the UNIQUE index would silently drop a win).
  mysql: {
    id: 'bigint',
    ref: 'bigint',
    instant: sql`datetime(6)`,
    userId: sql`varchar(64) character set ascii collate ascii_bin`,
  },
}

export function initial(dialect: Dialect) {
  const t = types[dialect]
  const tableOptions = dialect === 'mysql' ? sql`engine=InnoDB default charset=utf8mb4` : sql``
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('coupons')
        .ifNotExists()
        .addColumn('id', t.id, (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('title', 'varchar(255)', (c) => c.notNull())
        .addColumn('coupon_type', 'varchar(255)', (c) => c.notNull())
        .addColumn('total_quantity', 'integer')
        .addColumn('issued_quantity', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('discount_amount', 'integer', (c) => c.notNull())
        .addColumn('min_available_amount', 'integer', (c) => c.notNull())
        .addColumn('date_issue_start', t.instant, (c) => c.notNull())
        .addColumn('date_issue_end', t.instant, (c) => c.notNull())
        .addColumn('date_created', t.instant, (c) => c.notNull())
        .addColumn('date_updated', t.instant, (c) => c.notNull())
        .modifyEnd(tableOptions)
        .execute()

      await db.schema
        .createTable('coupon_issues')
        .ifNotExists()
        .addColumn('id', t.id, (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('coupon_id', t.ref, (c) => c.notNull())
        .addColumn('user_id', t.userId, (c) => c.notNull())
        .addColumn('rank', 'integer', (c) => c.notNull())
        .addColumn('date_issued', t.instant, (c) => c.notNull())
        .addColumn('date_used', t.instant)
        .addColumn('date_created', t.instant, (c) => c.notNull())
        .addColumn('date_updated', t.instant, (c) => c.notNull())
        // The last guard against duplicates: a repeated insert of the pair is a no-op.
        .addUniqueConstraint('uq_coupon_issues_coupon_user', ['coupon_id', 'user_id'])
        .addForeignKeyConstraint('fk_coupon_issues_coupon', ['coupon_id'], 'coupons', ['id'])
        .modifyEnd(tableOptions)
        .execute()
    },
  }
}
