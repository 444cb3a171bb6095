/**
 * The events feed: the sequencer that gives committed events their feed id, and
 * the reads of the feed.
 *
 * Why a sequencer. The triggers (migration 007) write each event in the
 * transaction of its change, and the row gets an auto-increment `id` then. Ids
 * are handed out at insert, not at commit: a worker's transaction holding id 7
 * may commit after another's holding id 8. A reader paging by `id > 8` would
 * never see 7. So the feed is ordered by `seq`, which `sequence()` gives after
 * commit, in one short transaction that first locks the `event_feed` row:
 *   lock event_feed → the oldest N committed events without seq →
 *   seq = id + (last_seq − lowest id + 1) for them → last_seq = the highest seq.
 * The lock makes these transactions take turns, so each one's seqs are above
 * every earlier one's and commit after them: when a reader sees seq s, every
 * seq below s is already visible to it. A straggler (an event committed late
 * with a small id) gets a seq above everything sequenced before it.
 * Any number of processes may call `sequence()`; the dispatcher's lease holder
 * does (src/events/event-pump.ts), a few times a second and after each batch.
 * Seqs increase but are not dense (gaps are normal).
 */
import { sql } from 'kysely'
import type { Dialect } from '../config.js'
import { type Db, dialectOf } from '../db/database.js'
import { type EventsTable, toDate } from '../db/schema.js'

export const EVENT_TYPES = [
  'coupon.issued',
  'coupon.used',
  'coupon.use_cancelled',
  'coupon.sold_out',
  'coupon.draw_done',
] as const
export type EventType = (typeof EVENT_TYPES)[number]

/** An event as the feed and webhooks show it. */
export interface FeedEvent {
  id: number
  type: string
  createdAt: string
  data: Record<string, unknown>
}

/** events sequenced per transaction at most */
export const SEQUENCE_BATCH = 20_000

/**
 * Gives feed ids to committed events that have none, oldest first, at most
 * `limit`. Returns how many were given (0: none waiting).
 */
export async function sequence(db: Db, limit = SEQUENCE_BATCH): Promise<number> {
  // Idle: one index probe, no transaction.
  const any = await db
    .selectFrom('events')
    .select('id')
    .where('seq', 'is', null)
    .limit(1)
    .executeTakeFirst()
  if (!any) return 0
  const dialect = dialectOf(db)
  let tx = db.transaction()
  // No gap locks on MySQL: the workers' inserts of new events go on meanwhile.
  if (dialect !== 'sqlite') tx = tx.setIsolationLevel('read committed')
  return tx.execute(async (trx) => {
    let head = trx.selectFrom('event_feed').select('last_seq').where('id', '=', 1)
    if (dialect !== 'sqlite') head = head.forUpdate()
    const row = await head.executeTakeFirst()
    if (!row) throw new Error('event_feed has no row: migration 007 has not run')
    const last = Number(row.last_seq)
    // The range of the oldest `limit` waiting: two index probes, no ids carried.
    const unsequenced = trx.selectFrom('events').select('id').where('seq', 'is', null).orderBy('id')
    const lo = await unsequenced.limit(1).executeTakeFirst()
    if (!lo) return 0
    const top =
      (await unsequenced
        .offset(limit - 1)
        .limit(1)
        .executeTakeFirst()) ??
      (await trx
        .selectFrom('events')
        .select('id')
        .where('seq', 'is', null)
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst()) ??
      lo
    // Each statement reads what is committed by then (read committed): should
    // the second find none, the range is lo alone, never one that ends below it
    // (last_seq would go back, and the next round give a seq twice).
    const hi = { id: Math.max(Number(top.id), Number(lo.id)) }
    const offset = last - Number(lo.id) + 1
    // Only the ids seen: an event below `lo` committing meanwhile waits for the
    // next round (its seq must be above `last`).
    const result = await trx
      .updateTable('events')
      .set({ seq: sql`id + ${offset}` })
      .where('seq', 'is', null)
      .where('id', '>=', Number(lo.id))
      .where('id', '<=', Number(hi.id))
      .executeTakeFirst()
    await trx
      .updateTable('event_feed')
      .set({ last_seq: Number(hi.id) + offset })
      .where('id', '=', 1)
      .execute()
    return Number(result.numUpdatedRows)
  })
}

/** The highest feed id given so far. */
export async function feedHead(db: Db): Promise<number> {
  const row = await db
    .selectFrom('event_feed')
    .select('last_seq')
    .where('id', '=', 1)
    .executeTakeFirst()
  return Number(row?.last_seq ?? 0)
}

/** Events committed but not yet sequenced, and the oldest one's time (null: none). */
export async function unsequenced(db: Db): Promise<{ count: number; oldest: Date | null }> {
  const row = await db
    .selectFrom('events')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('occurred_at').as('oldest')])
    .where('seq', 'is', null)
    .executeTakeFirst()
  return {
    count: Number(row?.n ?? 0),
    oldest: row?.oldest == null ? null : toDate(row.oldest as Date | string),
  }
}

export interface ReadOptions {
  after: number
  limit: number
  /** only these types (none: all) */
  types?: readonly string[] | undefined
  /** only up to this feed id */
  upTo?: number | undefined
}

/** An event as sent: its feed id and type, and its JSON text (a FeedEvent). */
export interface EncodedEvent {
  id: number
  type: string
  json: string
}

/**
 * An instant column as the feed shows it (ISO 8601, UTC, to the millisecond,
 * as `Date#toISOString` writes it), formatted by the database: no Date per
 * event on the way out.
 */
function isoText(dialect: Dialect, column: 'issued_at' | 'occurred_at') {
  const c = sql.ref(column)
  switch (dialect) {
    case 'postgres':
      return sql<string | null>`to_char(${c} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
    case 'mysql':
      return sql<string | null>`concat(left(date_format(${c}, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')`
    case 'sqlite':
      return sql<string | null>`strftime('%Y-%m-%dT%H:%M:%fZ', ${c})`
  }
}

/**
 * Events with a feed id above `after`, in feed order, each already in its JSON
 * text: what the feed answers and webhooks send, built once, here.
 */
export async function readFeedJson(db: Db, o: ReadOptions): Promise<EncodedEvent[]> {
  const dialect = dialectOf(db)
  let query = db
    .selectFrom('events')
    .select([
      'seq',
      'type',
      'coupon_id',
      'user_id',
      'rank',
      'order_id',
      'quantity',
      isoText(dialect, 'issued_at').as('issued'),
      isoText(dialect, 'occurred_at').as('created'),
    ])
    .where('seq', '>', o.after)
  if (o.upTo !== undefined) query = query.where('seq', '<=', o.upTo)
  if (o.types && o.types.length > 0) query = query.where('type', 'in', [...o.types])
  const rows = await query.orderBy('seq').limit(o.limit).execute()
  return rows.map((r) => {
    const id = Number(r.seq)
    return {
      id,
      type: r.type,
      json: `{"id":${id},"type":${text(r.type)},"createdAt":${text(r.created)},"data":${dataJson(r)}}`,
    }
  })
}

/** Events with a feed id above `after`, in feed order, as objects. */
export async function readFeed(db: Db, o: ReadOptions): Promise<FeedEvent[]> {
  return (await readFeedJson(db, o)).map((e) => JSON.parse(e.json) as FeedEvent)
}

/** An event as the feed reads it: the table's columns, its instants as ISO text (isoText). */
type EventRow = Pick<
  EventsTable,
  'seq' | 'type' | 'coupon_id' | 'user_id' | 'rank' | 'order_id' | 'quantity'
> & {
  issued: string | null
  created: string | null
}

const num = (v: number | null) => (v === null ? 'null' : String(Number(v)))
const text = (v: string | null) => JSON.stringify(v)

/** `data` of each type, as JSON text. */
function dataJson(r: EventRow): string {
  const coupon = `{"couponId":${num(r.coupon_id)}`
  const at = text(r.created)
  switch (r.type) {
    case 'coupon.issued':
      return `${coupon},"userId":${text(r.user_id)},"rank":${num(r.rank)},"issuedAt":${text(r.issued)}}`
    case 'coupon.used':
      return `${coupon},"userId":${text(r.user_id)},"rank":${num(r.rank)},"orderId":${text(r.order_id)},"usedAt":${at}}`
    case 'coupon.use_cancelled':
      return `${coupon},"userId":${text(r.user_id)},"rank":${num(r.rank)},"orderId":${text(r.order_id)},"cancelledAt":${at}}`
    case 'coupon.sold_out':
      return `${coupon},"totalQuantity":${num(r.quantity)},"soldOutAt":${at}}`
    // The record itself (seed, entrants, winners' pseudonyms): GET /v1/coupons/{id}/draw.
    case 'coupon.draw_done':
      return `${coupon},"winners":${num(r.quantity)},"drawnAt":${at}}`
    default:
      return `${coupon}}`
  }
}
