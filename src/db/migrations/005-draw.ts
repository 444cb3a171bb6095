/**
 * The opening draw (docs/draw.md):
 * - `coupons.draw_at` (null: no draw) and `coupons.draw_commitment` (hex SHA-256
 *   of the seed, shown on the coupon from the moment draw_at is set);
 * - `coupon_draws`, one row per coupon that ever had a draw: the secret seed
 *   (drawn once, never changed, so the commitment holds), and once the draw has
 *   run its record (quantity, entrants, entrants' digest, winners, drawn_at);
 *   `drawn_at` not null is what "the draw has run" means;
 * - `coupon_entries`, the entrants by pseudonym: PRIMARY KEY (coupon_id,
 *   pseudonym), so one entry per user (a pseudonym is a function of the user
 *   id) and the draw reads them in the order it needs (sorted) off the index.
 *   Embedded mode writes an entry before answering it; Redis mode copies them
 *   from Redis when it draws.
 *
 * Looks before it acts (MySQL and SQLite have no `ADD COLUMN IF NOT EXISTS`):
 * safe to run again after a run cut short.
 */
import { type ColumnDataType, type Expression, type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

type Type = ColumnDataType | Expression<unknown>

const types: Record<Dialect, { ref: Type; instant: Type; hex: Type; userId: Type; text: Type }> = {
  sqlite: { ref: 'integer', instant: 'text', hex: 'text', userId: 'text', text: 'text' },
  postgres: {
    ref: 'bigint',
    instant: 'timestamptz',
    hex: 'char(64)',
    userId: 'varchar(64)',
    text: 'text',
  },
  mysql: {
    ref: 'bigint',
    instant: sql`datetime(6)`,
    hex: sql`char(64) character set ascii collate ascii_bin`,
    userId: sql`varchar(64) character set ascii collate ascii_bin`,
    text: sql`longtext character set ascii collate ascii_bin`,
  },
}

export function draw(dialect: Dialect) {
  const t = types[dialect]
  const options =
    dialect === 'mysql'
      ? sql`engine=InnoDB default charset=utf8mb4`
      : dialect === 'sqlite'
        ? sql`without rowid`
        : sql``
  return {
    async up(db: Kysely<unknown>) {
      const tables = await db.introspection.getTables()
      const coupons = tables.find((x) => x.name === 'coupons')
      if (!coupons?.columns.some((c) => c.name === 'draw_at'))
        await db.schema.alterTable('coupons').addColumn('draw_at', t.instant).execute()
      if (!coupons?.columns.some((c) => c.name === 'draw_commitment'))
        await db.schema.alterTable('coupons').addColumn('draw_commitment', t.hex).execute()

      await db.schema
        .createTable('coupon_draws')
        .ifNotExists()
        .addColumn('coupon_id', t.ref, (c) => c.primaryKey())
        .addColumn('seed', t.hex, (c) => c.notNull())
        .addColumn('commitment', t.hex, (c) => c.notNull())
        .addColumn('draw_at', t.instant)
        .addColumn('quantity', 'integer')
        .addColumn('entrants', 'integer')
        .addColumn('entrants_digest', t.hex)
        .addColumn('winners', t.text)
        .addColumn('drawn_at', t.instant)
        .addForeignKeyConstraint('fk_coupon_draws_coupon', ['coupon_id'], 'coupons', ['id'])
        .modifyEnd(dialect === 'mysql' ? options : sql``)
        .execute()

      await db.schema
        .createTable('coupon_entries')
        .ifNotExists()
        .addColumn('coupon_id', t.ref, (c) => c.notNull())
        .addColumn('pseudonym', t.hex, (c) => c.notNull())
        .addColumn('user_id', t.userId, (c) => c.notNull())
        .addPrimaryKeyConstraint('pk_coupon_entries', ['coupon_id', 'pseudonym'])
        .addForeignKeyConstraint('fk_coupon_entries_coupon', ['coupon_id'], 'coupons', ['id'])
        .modifyEnd(options)
        .execute()
    },
  }
}
