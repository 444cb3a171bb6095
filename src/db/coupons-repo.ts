/** Coupon rows: plain functions over a Kysely instance or a transaction. */
import { type Selectable, sql } from 'kysely'
import { COUPON_TYPE, type Coupon, type CouponDraft } from '../domain/coupon.js'
import { type Db, dialectOf } from './database.js'
import { type CouponsTable, toDate } from './schema.js'

export function toCoupon(row: Selectable<CouponsTable>): Coupon {
  return {
    id: Number(row.id),
    title: row.title,
    type: COUPON_TYPE,
    totalQuantity: row.total_quantity === null ? null : Number(row.total_quantity),
    issuedQuantity: Number(row.issued_quantity),
    discountAmount: Number(row.discount_amount),
    minAvailableAmount: Number(row.min_available_amount),
    issueStart: toDate(row.date_issue_start),
    issueEnd: toDate(row.date_issue_end),
    createdAt: toDate(row.date_created),
    updatedAt: toDate(row.date_updated),
    drawAt: row.draw_at == null ? null : toDate(row.draw_at),
    drawCommitment: row.draw_commitment ?? null,
  }
}

function draftColumns(draft: CouponDraft) {
  return {
    title: draft.title,
    total_quantity: draft.totalQuantity,
    discount_amount: draft.discountAmount,
    min_available_amount: draft.minAvailableAmount,
    date_issue_start: draft.issueStart,
    date_issue_end: draft.issueEnd,
    draw_at: draft.drawAt ?? null,
  }
}

export async function insertCoupon(db: Db, draft: CouponDraft, now: Date): Promise<Coupon> {
  const values = {
    ...draftColumns(draft),
    coupon_type: COUPON_TYPE,
    issued_quantity: 0,
    date_created: now,
    date_updated: now,
  }
  // MySQL has no RETURNING; its insertId is exact for a single-row insert.
  if (db.getExecutor().adapter.supportsReturning) {
    const row = await db
      .insertInto('coupons')
      .values(values)
      .returningAll()
      .executeTakeFirstOrThrow()
    return toCoupon(row)
  }
  const result = await db.insertInto('coupons').values(values).executeTakeFirstOrThrow()
  const coupon = await findCoupon(db, Number(result.insertId))
  if (!coupon) throw new Error('inserted coupon not found')
  return coupon
}

export async function findCoupon(db: Db, id: number): Promise<Coupon | null> {
  const row = await db.selectFrom('coupons').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? toCoupon(row) : null
}

/** Every coupon's id (coupons are never deleted). */
export async function listCouponIds(db: Db): Promise<number[]> {
  const rows = await db.selectFrom('coupons').select('id').execute()
  return rows.map((r) => Number(r.id))
}

/** The ids of the coupons whose window ends after `instant`. */
export async function listCouponIdsEndingAfter(db: Db, instant: Date): Promise<number[]> {
  const rows = await db
    .selectFrom('coupons')
    .select('id')
    .where('date_issue_end', '>', instant)
    .execute()
  return rows.map((r) => Number(r.id))
}

/** Of these coupon ids, those the database holds no coupon for. */
export async function listAbsentCouponIds(db: Db, ids: readonly number[]): Promise<number[]> {
  if (ids.length === 0) return []
  const rows = await db.selectFrom('coupons').select('id').where('id', 'in', ids).execute()
  const present = new Set(rows.map((r) => Number(r.id)))
  return ids.filter((id) => !present.has(id))
}

export async function listCoupons(db: Db): Promise<Coupon[]> {
  const rows = await db.selectFrom('coupons').selectAll().orderBy('id').execute()
  return rows.map(toCoupon)
}

export async function updateCoupon(db: Db, id: number, draft: CouponDraft, now: Date) {
  await db
    .updateTable('coupons')
    .set({ ...draftColumns(draft), date_updated: now })
    .where('id', '=', id)
    .execute()
}

/**
 * Takes the coupons' row locks for the rest of the transaction (a write, so SQLite
 * takes its write lock too). The worker and reconciliation both start with it, so
 * a batch of wins is never written while a coupon's gate state is being rebuilt.
 */
export async function lockCoupons(db: Db, ids: readonly number[]) {
  for (const id of [...ids].sort((a, b) => a - b)) {
    await db
      .updateTable('coupons')
      .set({ issued_quantity: sql`issued_quantity` })
      .where('id', '=', id)
      .execute()
  }
}

/**
 * The coupon's totalQuantity (undefined: no such coupon), read under a shared
 * lock on its row: a change of it (which locks the row for update) waits for
 * this transaction, and this read sees the latest committed value (a locking
 * read, also under MySQL's repeatable read). Shared, so a batch of wins that
 * holds the row's shared lock already (its rows' key) and then updates the row
 * waits for this transaction instead of deadlocking with it.
 */
export async function sharedQuantity(db: Db, id: number): Promise<number | null | undefined> {
  const query = db.selectFrom('coupons').select('total_quantity').where('id', '=', id)
  const dialect = dialectOf(db)
  const row = await (dialect === 'postgres'
    ? query.forShare()
    : dialect === 'mysql'
      ? query.modifyEnd(sql`lock in share mode`)
      : query
  ).executeTakeFirst()
  return row === undefined ? undefined : row.total_quantity
}

export async function addIssuedQuantity(db: Db, id: number, added: number) {
  if (added === 0) return
  await db
    .updateTable('coupons')
    .set({ issued_quantity: sql`issued_quantity + ${added}` })
    .where('id', '=', id)
    .execute()
}
