/**
 * The opening draw's rows (migration 005): a coupon's seed and record in
 * `coupon_draws`, its entrants in `coupon_entries`. Plain functions over a
 * Kysely instance or a transaction. docs/draw.md.
 */
import { randomBytes } from 'node:crypto'
import { CompiledQuery, sql } from 'kysely'
import { commitmentOf, SEED_BYTES } from '../draw/shuffle.js'
import { type Db, dialectOf } from './database.js'
import { toDate } from './schema.js'

export interface DrawRow {
  couponId: number
  seed: Buffer
  commitment: string
  /** null until the draw has run */
  drawn: {
    drawAt: Date
    drawnAt: Date
    quantity: number
    entrants: number
    entrantsDigest: string
    /** pseudonyms, rank 1 first */
    winners: string[]
  } | null
}

export interface Entrant {
  pseudonym: string
  userId: string
}

/**
 * The coupon's seed, drawn from the operating system's cryptographic source the
 * first time a drawAt is set and kept for good (a commitment once shown stays
 * true); the coupon row shows its commitment. Returns the commitment.
 */
export async function ensureDrawSeed(db: Db, couponId: number): Promise<string> {
  const found = await db
    .selectFrom('coupon_draws')
    .select('commitment')
    .where('coupon_id', '=', couponId)
    .executeTakeFirst()
  if (found) return found.commitment
  const seed = randomBytes(SEED_BYTES)
  const commitment = commitmentOf(seed)
  await db
    .insertInto('coupon_draws')
    .values({ coupon_id: couponId, seed: seed.toString('hex'), commitment })
    .execute()
  await db
    .updateTable('coupons')
    .set({ draw_commitment: commitment })
    .where('id', '=', couponId)
    .execute()
  return commitment
}

export async function findDraw(db: Db, couponId: number): Promise<DrawRow | null> {
  const row = await db
    .selectFrom('coupon_draws')
    .selectAll()
    .where('coupon_id', '=', couponId)
    .executeTakeFirst()
  if (!row) return null
  const done = row.drawn_at !== null && row.draw_at !== null
  return {
    couponId,
    seed: Buffer.from(row.seed, 'hex'),
    commitment: row.commitment,
    drawn: done
      ? {
          drawAt: toDate(row.draw_at as Date | string),
          drawnAt: toDate(row.drawn_at as Date | string),
          quantity: Number(row.quantity),
          entrants: Number(row.entrants),
          entrantsDigest: row.entrants_digest as string,
          winners: row.winners ? row.winners.split('\n') : [],
        }
      : null,
  }
}

/** What the cockpit shows of a draw: its record's figures, never its seed or winners. */
export interface DrawSummary {
  commitment: string
  /** null until the draw has run */
  drawnAt: Date | null
  quantity: number | null
  entrants: number | null
}

/** The draws of these coupons (absent: no draw), in one query. */
export async function drawSummaries(
  db: Db,
  couponIds: readonly number[],
): Promise<Map<number, DrawSummary>> {
  const summaries = new Map<number, DrawSummary>()
  if (couponIds.length === 0) return summaries
  const rows = await db
    .selectFrom('coupon_draws')
    .select(['coupon_id', 'commitment', 'drawn_at', 'quantity', 'entrants'])
    .where('coupon_id', 'in', couponIds)
    .execute()
  const num = (v: unknown) => (v === null || v === undefined ? null : Number(v))
  for (const r of rows)
    summaries.set(Number(r.coupon_id), {
      commitment: r.commitment,
      drawnAt: r.drawn_at === null ? null : toDate(r.drawn_at as Date | string),
      quantity: num(r.quantity),
      entrants: num(r.entrants),
    })
  return summaries
}

/** The coupons whose draw is due (drawAt ≤ now) and has not run. */
export async function listDueDraws(db: Db, now: Date): Promise<number[]> {
  const rows = await db
    .selectFrom('coupons')
    .innerJoin('coupon_draws', 'coupon_draws.coupon_id', 'coupons.id')
    .select('coupons.id')
    .where('coupons.draw_at', '<=', now)
    .where('coupon_draws.drawn_at', 'is', null)
    .execute()
  return rows.map((r) => Number(r.id))
}

/**
 * The earliest drawAt of the draws not yet run (due or not), or null when none
 * is: what the draw runner sleeps until.
 */
export async function nextDrawAt(db: Db): Promise<Date | null> {
  const row = await db
    .selectFrom('coupons')
    .innerJoin('coupon_draws', 'coupon_draws.coupon_id', 'coupons.id')
    .select('coupons.draw_at')
    .where('coupons.draw_at', 'is not', null)
    .where('coupon_draws.drawn_at', 'is', null)
    .orderBy('coupons.draw_at')
    .limit(1)
    .executeTakeFirst()
  return row?.draw_at == null ? null : toDate(row.draw_at as Date | string)
}

/** The coupons with a draw not yet run (embedded mode restores their entrants). */
export async function listOpenDraws(db: Db): Promise<number[]> {
  const rows = await db
    .selectFrom('coupons')
    .innerJoin('coupon_draws', 'coupon_draws.coupon_id', 'coupons.id')
    .select('coupons.id')
    .where('coupons.draw_at', 'is not', null)
    .where('coupon_draws.drawn_at', 'is', null)
    .execute()
  return rows.map((r) => Number(r.id))
}

const ENTRIES_PER_STATEMENT = 1000

/** Entrants of one coupon; one already there is skipped (a retry, a second copy). */
export async function insertEntries(
  db: Db,
  couponId: number,
  entrants: readonly Entrant[],
): Promise<void> {
  const mysql = dialectOf(db) === 'mysql'
  for (let i = 0; i < entrants.length; i += ENTRIES_PER_STATEMENT) {
    const chunk = entrants.slice(i, i + ENTRIES_PER_STATEMENT)
    if (mysql) {
      const values: unknown[] = []
      for (const e of chunk) values.push(e.pseudonym, e.userId)
      await db.executeQuery(
        CompiledQuery.raw(
          `insert into \`coupon_entries\` (\`coupon_id\`, \`pseudonym\`, \`user_id\`) values ${`(${Number(couponId)}, ?, ?),`.repeat(chunk.length).slice(0, -1)} on duplicate key update \`user_id\` = \`user_id\``,
          values,
        ),
      )
      continue
    }
    await db
      .insertInto('coupon_entries')
      .values(
        chunk.map((e) => ({ coupon_id: couponId, pseudonym: e.pseudonym, user_id: e.userId })),
      )
      .onConflict((oc) => oc.columns(['coupon_id', 'pseudonym']).doNothing())
      .execute()
  }
}

/** A draw taken off its coupon before it ran: its entries go with it. */
export async function deleteEntries(db: Db, couponId: number): Promise<void> {
  await db.deleteFrom('coupon_entries').where('coupon_id', '=', couponId).execute()
}

const PAGE = 20_000

/** A coupon's entrants in pseudonym order, a page at a time (the public list, the draw). */
export async function* entrantPages(db: Db, couponId: number): AsyncGenerator<Entrant[]> {
  let after = ''
  for (;;) {
    const rows = await db
      .selectFrom('coupon_entries')
      .select(['pseudonym', 'user_id'])
      .where('coupon_id', '=', couponId)
      .where('pseudonym', '>', after)
      .orderBy('pseudonym')
      .limit(PAGE)
      .execute()
    if (rows.length === 0) return
    yield rows.map((r) => ({ pseudonym: r.pseudonym, userId: r.user_id }))
    if (rows.length < PAGE) return
    after = (rows.at(-1) as { pseudonym: string }).pseudonym
  }
}

export async function countEntries(db: Db, couponId: number): Promise<number> {
  const row = await db
    .selectFrom('coupon_entries')
    .select(sql<number>`count(*)`.as('n'))
    .where('coupon_id', '=', couponId)
    .executeTakeFirst()
  return Number(row?.n ?? 0)
}

export interface DrawOutcome {
  drawAt: Date
  quantity: number
  entrants: number
  entrantsDigest: string
  winners: readonly string[]
}

/**
 * The draw's record; a record already there stays (the draw runs once). The
 * draw's `coupon.draw_done` event is written with it, in one transaction (or in
 * the caller's), only by the call that wrote the record.
 */
export async function recordDraw(db: Db, couponId: number, o: DrawOutcome, now: Date) {
  const write = async (trx: Db) => {
    const updated = await trx
      .updateTable('coupon_draws')
      .set({
        draw_at: o.drawAt,
        quantity: o.quantity,
        entrants: o.entrants,
        entrants_digest: o.entrantsDigest,
        winners: o.winners.join('\n'),
        drawn_at: now,
      })
      .where('coupon_id', '=', couponId)
      .where('drawn_at', 'is', null)
      .executeTakeFirst()
    if (Number(updated.numUpdatedRows) === 0) return
    await trx
      .insertInto('events')
      .values({
        type: 'coupon.draw_done',
        coupon_id: couponId,
        quantity: o.winners.length,
        occurred_at: now,
      })
      .execute()
  }
  if (db.isTransaction) await write(db)
  else await db.transaction().execute(write)
}
