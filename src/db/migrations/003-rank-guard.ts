/**
 * The database refuses, on its own, what only the gate prevented before: a rank
 * given twice, and a rank outside 1..total_quantity (so no more rows than the
 * quantity). Whatever happens to Redis (a shorter AOF, an older RDB, a promoted
 * replica), no writer can store an oversell. See docs/architecture.md ("When Redis
 * forgets").
 *
 * - a UNIQUE index on (coupon_id, rank), on every dialect;
 * - a trigger that refuses a row whose rank is below 1 or above its coupon's
 *   total_quantity (NULL: unlimited). A CHECK constraint cannot read another
 *   table. PostgreSQL checks once per statement (a transition table: the worker
 *   inserts a thousand rows per statement), MySQL/MariaDB and SQLite per row.
 *   The error it raises is a constraint violation in each dialect's terms (so
 *   src/db/errors.ts blames the row) and names RANK_REFUSED.
 *
 * A database that already holds a rank twice (written by a release without this
 * guard after Redis lost data) cannot take the index: the migration stops and
 * names a coupon and rank to resolve by hand (docs/operations.md).
 *
 * MySQL has no transactional DDL and no CREATE INDEX IF NOT EXISTS: each step
 * looks before it acts, so a run cut short is safe to run again.
 */
import { type Kysely, sql } from 'kysely'
import type { Dialect } from '../../config.js'
import { RANK_REFUSED } from '../errors.js'

export const RANK_INDEX = 'uq_coupon_issues_coupon_rank'
const TRIGGER = 'trg_coupon_issues_rank'

async function assertNoRankTwice(db: Kysely<unknown>) {
  const { rows } = await sql<{ coupon_id: number; rank: number; n: number }>`
    select coupon_id, ${sql.ref('rank')}, count(*) as n from coupon_issues
    group by coupon_id, ${sql.ref('rank')} having count(*) > 1 limit 1`.execute(db)
  const twice = rows[0]
  if (twice)
    throw new Error(
      `coupon ${twice.coupon_id} has rank ${twice.rank} ${twice.n} times: resolve it before ` +
        'this migration (docs/operations.md, "A rank given twice")',
    )
}

async function indexExists(db: Kysely<unknown>, dialect: Dialect): Promise<boolean> {
  if (dialect !== 'mysql') return false // CREATE UNIQUE INDEX IF NOT EXISTS below
  const { rows } = await sql<{ n: number }>`
    select count(*) as n from information_schema.statistics
    where table_schema = database() and table_name = 'coupon_issues'
      and index_name = ${RANK_INDEX}`.execute(db)
  return Number(rows[0]?.n) > 0
}

async function createTrigger(db: Kysely<unknown>, dialect: Dialect) {
  if (dialect === 'sqlite') {
    await sql
      .raw(`create trigger if not exists ${TRIGGER} before insert on coupon_issues
      when new.rank < 1 or new.rank > (select total_quantity from coupons where id = new.coupon_id)
      begin select raise(abort, '${RANK_REFUSED}'); end`)
      .execute(db)
    await sql
      .raw(`create trigger if not exists ${TRIGGER}_update before update of rank on coupon_issues
      when new.rank < 1 or new.rank > (select total_quantity from coupons where id = new.coupon_id)
      begin select raise(abort, '${RANK_REFUSED}'); end`)
      .execute(db)
    return
  }
  if (dialect === 'postgres') {
    await sql
      .raw(`create or replace function firstcome_rank_within_quantity() returns trigger
      language plpgsql as $$
      begin
        if exists (select 1 from new_rows n join coupons c on c.id = n.coupon_id
                   where n.rank < 1 or n.rank > c.total_quantity) then
          raise exception '${RANK_REFUSED}' using errcode = 'check_violation';
        end if;
        return null;
      end $$`)
      .execute(db)
    for (const event of ['insert', 'update']) {
      await sql.raw(`drop trigger if exists ${TRIGGER}_${event} on coupon_issues`).execute(db)
      await sql
        .raw(`create trigger ${TRIGGER}_${event} after ${event} on coupon_issues
        referencing new table as new_rows for each statement
        execute function firstcome_rank_within_quantity()`)
        .execute(db)
    }
    return
  }
  // MySQL/MariaDB: per row; 3819 is ER_CHECK_CONSTRAINT_VIOLATED (SQLSTATE 23000).
  // An update is checked only when it changes the rank: InnoDB reads the coupon
  // in a trigger with a shared lock, and a spend (an update of order_id, holding
  // its row) waiting for it behind the worker (holding the coupon, inserting
  // beside that row) would be a deadlock.
  const check = `if new.\`rank\` < 1 or new.\`rank\` > (select total_quantity from coupons where id = new.coupon_id) then
          signal sqlstate '23000' set mysql_errno = 3819, message_text = '${RANK_REFUSED}';
        end if;`
  for (const event of ['insert', 'update']) {
    await sql.raw(`drop trigger if exists ${TRIGGER}_${event}`).execute(db)
    const body =
      event === 'insert' ? check : `if new.\`rank\` <> old.\`rank\` then ${check} end if;`
    await sql
      .raw(`create trigger ${TRIGGER}_${event} before ${event} on coupon_issues for each row
      begin
        ${body}
      end`)
      .execute(db)
  }
}

export function rankGuard(dialect: Dialect) {
  return {
    async up(db: Kysely<unknown>) {
      if (!(await indexExists(db, dialect))) {
        await assertNoRankTwice(db)
        await sql
          .raw(
            dialect === 'mysql'
              ? `create unique index ${RANK_INDEX} on coupon_issues (coupon_id, \`rank\`)`
              : `create unique index if not exists ${RANK_INDEX} on coupon_issues (coupon_id, rank)`,
          )
          .execute(db)
      }
      await createTrigger(db, dialect)
    },
  }
}
