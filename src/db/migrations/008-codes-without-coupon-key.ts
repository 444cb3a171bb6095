/**
 * `coupon_codes` without its foreign key to `coupons` (PostgreSQL, MySQL).
 *
 * The key was checked for each code an upload inserts, inside the upload's one
 * transaction, against the coupon's row, which every batch of wins updates
 * (`issued_quantity`):
 * - MySQL took a shared lock on that row and held it to the upload's commit. A
 *   win's commit holds the same (its rows' own key) and then asks for the
 *   exclusive lock; so did the upload at its end (the recheck of the quantity,
 *   code-pool.ts): a deadlock, and wins answered 503 during an upload.
 * - PostgreSQL locked the row FOR KEY SHARE once per code while the wins
 *   updated it: an upload during the event took minutes instead of seconds.
 * Coupons are never deleted, and an upload finds its coupon before it writes
 * (code-pool.ts), so the key guarded nothing the service could break. SQLite
 * keeps it: one writer, no lock to wait for.
 */
import { type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

export function codesWithoutCouponKey(dialect: Dialect) {
  return {
    async up(db: Kysely<unknown>) {
      if (dialect === 'postgres') {
        await sql`alter table coupon_codes drop constraint if exists fk_coupon_codes_coupon`.execute(
          db,
        )
      } else if (dialect === 'mysql') {
        // MySQL has no DROP FOREIGN KEY IF EXISTS (MariaDB has): safe to run again.
        const { rows } = await sql`select 1 from information_schema.table_constraints
          where table_schema = database() and table_name = 'coupon_codes'
            and constraint_name = 'fk_coupon_codes_coupon' and constraint_type = 'FOREIGN KEY'`.execute(
          db,
        )
        if (rows.length > 0)
          await sql`alter table coupon_codes drop foreign key fk_coupon_codes_coupon`.execute(db)
      }
    },
  }
}
