/**
 * Events to other systems (docs/events.md, docs/architecture.md "Events").
 *
 * - `events`: one row per thing that happened. Triggers write them, in the
 *   transaction of the change they describe, whoever makes it (the stream
 *   worker, the embedded group commit, a spend that persists a queued win, a
 *   give-back, an import by hand):
 *     coupon_issues INSERT           → coupon.issued (only rows really inserted:
 *                                      a pair skipped by ON CONFLICT fires nothing)
 *     coupon_issues UPDATE order_id  → coupon.used / coupon.use_cancelled
 *     coupons UPDATE reaching total  → coupon.sold_out
 *   `id` is the row's storage key, given at insert: NOT the feed's order (a
 *   transaction that took id 7 may commit after the one that took id 8).
 *   `seq` is the feed id, given after commit by the sequencer (src/events/feed.ts)
 *   under the lock of the `event_feed` row, so every seq a reader can see was
 *   committed after every smaller one: a reader paging by `after=<seq>` never
 *   skips an event that committed late.
 * - `event_feed`: the one row the sequencer locks, with the last seq given.
 * - `webhooks`: endpoints, their secret, and where each stands (`delivered_seq`: the
 *   last seq delivered), so delivery survives any process's death.
 * - `event_leases`: which process dispatches (a row per lease, expiring).
 *
 * PostgreSQL's triggers are per statement (transition tables): one INSERT …
 * SELECT per batch of wins, not a function call per row. MySQL and SQLite have
 * only row triggers; theirs are a single INSERT each.
 * Every statement is IF NOT EXISTS / OR REPLACE / looks first: safe to run again
 * after a run cut short (MySQL has no transactional DDL).
 */
import { type ColumnDataType, type Expression, type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'

type Type = ColumnDataType | Expression<unknown>

const types: Record<Dialect, { id: Type; ref: Type; instant: Type; text64: Type }> = {
  sqlite: { id: 'integer', ref: 'integer', instant: 'text', text64: 'text' },
  postgres: { id: 'bigserial', ref: 'bigint', instant: 'timestamptz', text64: 'varchar(64)' },
  mysql: {
    id: 'bigint',
    ref: 'bigint',
    instant: sql`datetime(6)`,
    text64: sql`varchar(64) character set ascii collate ascii_bin`,
  },
}

const TRIGGERS = ['events_issued', 'events_spent', 'events_sold_out'] as const

export function events(dialect: Dialect) {
  const t = types[dialect]
  const tableOptions = dialect === 'mysql' ? sql`engine=InnoDB default charset=utf8mb4` : sql``
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('events')
        .ifNotExists()
        .addColumn('id', t.id, (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('seq', 'bigint', (c) => c.unique())
        .addColumn('type', 'varchar(32)', (c) => c.notNull())
        .addColumn('coupon_id', t.ref, (c) => c.notNull())
        .addColumn('user_id', t.text64)
        .addColumn('rank', 'integer')
        .addColumn('order_id', t.text64)
        .addColumn('quantity', 'integer')
        .addColumn('issued_at', t.instant)
        .addColumn('occurred_at', t.instant, (c) => c.notNull())
        .modifyEnd(tableOptions)
        .execute()
      // What the sequencer looks for. MySQL has no partial index: there the
      // unique index on seq serves (NULLs first, then the primary key).
      if (dialect !== 'mysql') {
        await sql`create index if not exists ix_events_unsequenced on events (id) where seq is null`.execute(
          db,
        )
      }

      await db.schema
        .createTable('event_feed')
        .ifNotExists()
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('last_seq', 'bigint', (c) => c.notNull())
        .modifyEnd(tableOptions)
        .execute()

      await db.schema
        .createTable('webhooks')
        .ifNotExists()
        .addColumn('id', t.id, (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('url', 'varchar(2048)', (c) => c.notNull())
        // comma-joined event types
        .addColumn('types', 'varchar(255)', (c) => c.notNull())
        .addColumn('secret', 'varchar(255)', (c) => c.notNull())
        .addColumn('delivered_seq', 'bigint', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        // epoch ms: the dispatcher's own times
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('failing_since', 'bigint')
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'varchar(512)')
        .addColumn('last_attempt_at', 'bigint')
        .addColumn('last_success_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .modifyEnd(tableOptions)
        .execute()

      await db.schema
        .createTable('event_leases')
        .ifNotExists()
        .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('holder', 'varchar(128)', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .modifyEnd(tableOptions)
        .execute()

      const feedRow = sql`(id, last_seq) values (1, 0)`
      if (dialect === 'mysql') await sql`insert ignore into event_feed ${feedRow}`.execute(db)
      else await sql`insert into event_feed ${feedRow} on conflict do nothing`.execute(db)

      if (dialect === 'postgres') await postgresTriggers(db)
      else if (dialect === 'mysql') await mysqlTriggers(db)
      else await sqliteTriggers(db)
    },
  }
}

async function postgresTriggers(db: Kysely<unknown>) {
  await sql`
    create or replace function firstcome_events_issued() returns trigger language plpgsql as $$
    begin
      insert into events (type, coupon_id, user_id, rank, issued_at, occurred_at)
      select 'coupon.issued', coupon_id, user_id, rank, date_issued, date_created
      from new_rows order by coupon_id, rank;
      return null;
    end $$`.execute(db)
  await sql`
    create or replace function firstcome_events_spent() returns trigger language plpgsql as $$
    begin
      insert into events (type, coupon_id, user_id, rank, order_id, occurred_at)
      select case when n.order_id is null then 'coupon.use_cancelled' else 'coupon.used' end,
             n.coupon_id, n.user_id, n.rank, coalesce(n.order_id, o.order_id), n.date_updated
      from new_rows n join old_rows o on o.id = n.id
      where n.order_id is distinct from o.order_id
      order by n.id;
      return null;
    end $$`.execute(db)
  await sql`
    create or replace function firstcome_events_sold_out() returns trigger language plpgsql as $$
    begin
      insert into events (type, coupon_id, quantity, occurred_at)
      values ('coupon.sold_out', new.id, new.total_quantity, now());
      return null;
    end $$`.execute(db)
  for (const [name, table] of [
    ['events_issued', 'coupon_issues'],
    ['events_spent', 'coupon_issues'],
    ['events_sold_out', 'coupons'],
  ] as const) {
    await sql`drop trigger if exists ${sql.id(name)} on ${sql.id(table)}`.execute(db)
  }
  await sql`
    create trigger events_issued after insert on coupon_issues
    referencing new table as new_rows
    for each statement execute function firstcome_events_issued()`.execute(db)
  await sql`
    create trigger events_spent after update on coupon_issues
    referencing old table as old_rows new table as new_rows
    for each statement execute function firstcome_events_spent()`.execute(db)
  await sql`
    create trigger events_sold_out after update of issued_quantity, total_quantity on coupons
    for each row
    when (new.total_quantity is not null and new.issued_quantity >= new.total_quantity
          and (old.total_quantity is null or old.issued_quantity < old.total_quantity))
    execute function firstcome_events_sold_out()`.execute(db)
}

async function mysqlTriggers(db: Kysely<unknown>) {
  for (const name of TRIGGERS) await sql`drop trigger if exists ${sql.id(name)}`.execute(db)
  await sql`
    create trigger events_issued after insert on coupon_issues for each row
    insert into events (type, coupon_id, user_id, \`rank\`, issued_at, occurred_at)
    values ('coupon.issued', new.coupon_id, new.user_id, new.\`rank\`, new.date_issued, new.date_created)`.execute(
    db,
  )
  await sql`
    create trigger events_spent after update on coupon_issues for each row
    insert into events (type, coupon_id, user_id, \`rank\`, order_id, occurred_at)
    select if(new.order_id is null, 'coupon.use_cancelled', 'coupon.used'), new.coupon_id,
           new.user_id, new.\`rank\`, coalesce(new.order_id, old.order_id), new.date_updated
    from dual where not (new.order_id <=> old.order_id)`.execute(db)
  await sql`
    create trigger events_sold_out after update on coupons for each row
    insert into events (type, coupon_id, quantity, occurred_at)
    select 'coupon.sold_out', new.id, new.total_quantity, utc_timestamp(6) from dual
    where new.total_quantity is not null and new.issued_quantity >= new.total_quantity
      and (old.total_quantity is null or old.issued_quantity < old.total_quantity)`.execute(db)
}

async function sqliteTriggers(db: Kysely<unknown>) {
  await sql`
    create trigger if not exists events_issued after insert on coupon_issues for each row
    begin
      insert into events (type, coupon_id, user_id, rank, issued_at, occurred_at)
      values ('coupon.issued', new.coupon_id, new.user_id, new.rank, new.date_issued, new.date_created);
    end`.execute(db)
  await sql`
    create trigger if not exists events_spent after update of order_id on coupon_issues for each row
    when new.order_id is not old.order_id
    begin
      insert into events (type, coupon_id, user_id, rank, order_id, occurred_at)
      values (case when new.order_id is null then 'coupon.use_cancelled' else 'coupon.used' end,
              new.coupon_id, new.user_id, new.rank, coalesce(new.order_id, old.order_id), new.date_updated);
    end`.execute(db)
  await sql`
    create trigger if not exists events_sold_out after update of issued_quantity, total_quantity on coupons
    for each row
    when new.total_quantity is not null and new.issued_quantity >= new.total_quantity
      and (old.total_quantity is null or old.issued_quantity < old.total_quantity)
    begin
      insert into events (type, coupon_id, quantity, occurred_at)
      values ('coupon.sold_out', new.id, new.total_quantity, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
    end`.execute(db)
}
