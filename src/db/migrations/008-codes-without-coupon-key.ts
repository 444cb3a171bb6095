/**
 * `coupon_codes` and `coupon_code_pools` without their foreign keys to
 * `coupons` (PostgreSQL, MySQL).
 *
 * The keys were checked inside an upload's one transaction (the pool row at its
 * start, each code it inserts) against the coupon's row, which every batch of
 * wins updates (`issued_quantity`):
 * - MySQL took a shared lock on that row and held it to the upload's commit. A
 *   win's commit, which updates the row, waited for the whole upload, and past
 *   the lock wait timeout was answered 503; as the upload asked for the
 *   exclusive lock at its end (the recheck of the quantity, code-pool.ts), it
 *   could deadlock with one too.
 * - PostgreSQL locked the row FOR KEY SHARE once per code while the wins
 *   updated it: an upload during the event took minutes instead of seconds.
 * Coupons are never deleted, and an upload finds its coupon before it writes
 * (code-pool.ts), so the keys guarded nothing the service could break. SQLite
 * keeps them: one writer, no lock to wait for.
 */
import { type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

const KEYS = [
  { table: 'coupon_codes', key: 'fk_coupon_codes_coupon' },
  { table: 'coupon_code_pools', key: 'fk_coupon_code_pools_coupon' },
]

export function codesWithoutCouponKey(dialect: Dialect) {
  return {
    async up(db: Kysely<unknown>) {
      for (const { table, key } of KEYS) {
        if (dialect === 'postgres') {
          await sql`alter table ${sql.table(table)} drop constraint if exists ${sql.id(key)}`.execute(
            db,
          )
        } else if (dialect === 'mysql') {
          // MySQL has no DROP FOREIGN KEY IF EXISTS (MariaDB has): safe to run again.
          const { rows } = await sql`select 1 from information_schema.table_constraints
            where table_schema = database() and table_name = ${table}
              and constraint_name = ${key} and constraint_type = 'FOREIGN KEY'`.execute(db)
          if (rows.length > 0)
            await sql`alter table ${sql.table(table)} drop foreign key ${sql.id(key)}`.execute(db)
        }
      }
    },
  }
}
