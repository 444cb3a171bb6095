/**
 * Partner codes: `coupon_codes` holds each coupon's codes in upload order, code
 * number `seq` = 1..n (the winner of rank r gets code r), and
 * `coupon_code_pools` one row per coupon that has codes, with how many.
 *
 * - PRIMARY KEY (coupon_id, seq): code number r of a coupon is one index probe,
 *   and on MySQL and SQLite (WITHOUT ROWID) the rows are stored in that order,
 *   so reading a range of codes reads consecutive pages.
 * - UNIQUE (coupon_id, code): a code appears once per coupon; the upload's
 *   duplicate check is this index.
 * - The pool row is what an upload locks: uploads of one coupon take turns on it
 *   without touching the coupon's own row, which the stream worker locks. (The
 *   foreign key to coupons did touch it, once per code: 008 drops it.)
 *
 * Codes are printable ASCII (src/domain/codes.ts); on MySQL the column is
 * ascii_bin, so "abc" and "ABC" are two codes there as everywhere else.
 * Every statement is IF NOT EXISTS: safe to run again after a run cut short.
 */
import { type ColumnDataType, type Expression, type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

type Type = ColumnDataType | Expression<unknown>

const types: Record<Dialect, { ref: Type; code: Type }> = {
  sqlite: { ref: 'integer', code: 'text' },
  postgres: { ref: 'bigint', code: 'varchar(128)' },
  mysql: { ref: 'bigint', code: sql`varchar(128) character set ascii collate ascii_bin` },
}

export function couponCodes(dialect: Dialect) {
  const t = types[dialect]
  const options =
    dialect === 'mysql'
      ? sql`engine=InnoDB default charset=utf8mb4`
      : dialect === 'sqlite'
        ? sql`without rowid`
        : sql``
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('coupon_codes')
        .ifNotExists()
        .addColumn('coupon_id', t.ref, (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('code', t.code, (c) => c.notNull())
        .addPrimaryKeyConstraint('pk_coupon_codes', ['coupon_id', 'seq'])
        .addUniqueConstraint('uq_coupon_codes_code', ['coupon_id', 'code'])
        .addForeignKeyConstraint('fk_coupon_codes_coupon', ['coupon_id'], 'coupons', ['id'])
        .modifyEnd(options)
        .execute()

      await db.schema
        .createTable('coupon_code_pools')
        .ifNotExists()
        .addColumn('coupon_id', t.ref, (c) => c.primaryKey())
        .addColumn('codes', 'integer', (c) => c.notNull())
        .addForeignKeyConstraint('fk_coupon_code_pools_coupon', ['coupon_id'], 'coupons', ['id'])
        .modifyEnd(dialect === 'mysql' ? options : sql``)
        .execute()
    },
  }
}
