/**
 * Table types. Names follow the original Spring system's schema so a team moving
 * from it keeps its data and queries; firstcome adds `rank`, UNIQUE(coupon_id,
 * user_id) and a text `user_id`.
 *
 * Instants: PostgreSQL `timestamptz`, MySQL `DATETIME(6)` written and read in UTC,
 * SQLite ISO-8601 text ending in `Z`. Writes pass `Date`; reads go through `toDate`.
 */
import type { ColumnType, Generated } from 'kysely'

export type Instant = ColumnType<Date | string, Date, Date>

export interface CouponsTable {
  id: Generated<number>
  title: string
  coupon_type: string
  total_quantity: number | null
  issued_quantity: ColumnType<number, number | undefined, number>
  discount_amount: number
  min_available_amount: number
  date_issue_start: Instant
  date_issue_end: Instant
  date_created: Instant
  date_updated: Instant
  /** the opening draw's instant; null: no draw (migration 005) */
  draw_at: ColumnType<Date | string | null, Date | null | undefined, Date | null>
  /** hex SHA-256 of the draw's seed; null until a drawAt is first set */
  draw_commitment: ColumnType<string | null, string | null | undefined, string | null>
}

export interface CouponIssuesTable {
  id: Generated<number>
  coupon_id: number
  user_id: string
  rank: number
  date_issued: Instant
  date_used: ColumnType<Date | string | null, Date | null | undefined, Date | null>
  /** the order the coupon was spent on; null while unused (migration 002) */
  order_id: ColumnType<string | null, string | null | undefined, string | null>
  /** the id of the request that won it (its Idempotency-Key); null before migration 004 */
  request_id: ColumnType<string | null, string | null | undefined, string | null>
  date_created: Instant
  date_updated: Instant
}

/** A coupon's partner codes: code number `seq` (1..n) goes to the win of rank `seq`. */
export interface CouponCodesTable {
  coupon_id: number
  seq: number
  code: string
}

/** One row per coupon that has codes: how many (what an upload locks). */
export interface CouponCodePoolsTable {
  coupon_id: number
  codes: number
}

/** A coupon's draw: its secret seed, and once drawn its record (migration 005). */
export interface CouponDrawsTable {
  coupon_id: number
  seed: string
  commitment: string
  draw_at: ColumnType<Date | string | null, Date | null | undefined, Date | null>
  quantity: number | null
  entrants: number | null
  entrants_digest: string | null
  /** the winners' pseudonyms, rank 1 first, joined by line feeds */
  winners: string | null
  drawn_at: ColumnType<Date | string | null, Date | null | undefined, Date | null>
}

/** One entrant of a coupon's draw, by pseudonym. */
export interface CouponEntriesTable {
  coupon_id: number
  pseudonym: string
  user_id: string
}

/** What happened (migration 007): written by triggers, `seq` given by the sequencer. */
export interface EventsTable {
  id: Generated<number>
  /** the feed id; null until sequenced */
  seq: number | null
  type: string
  coupon_id: number
  user_id: string | null
  rank: number | null
  order_id: string | null
  quantity: number | null
  issued_at: Instant | null
  occurred_at: Instant
}

export interface EventFeedTable {
  id: number
  last_seq: number
}

/** A webhook endpoint and where its delivery stands; times are epoch ms. */
export interface WebhooksTable {
  id: Generated<number>
  url: string
  /** comma-joined event types */
  types: string
  secret: string
  /** the last feed id delivered (or skipped: not of its types) */
  delivered_seq: number
  /** 'active' | 'failing' */
  state: string
  /** failed attempts at the batch in hand */
  attempts: number
  next_attempt_at: number
  failing_since: number | null
  last_status: number | null
  last_error: string | null
  last_attempt_at: number | null
  last_success_at: number | null
  created_at: number
}

export interface EventLeasesTable {
  name: string
  holder: string
  /** epoch ms */
  expires_at: number
}

export interface Tables {
  coupon_draws: CouponDrawsTable
  coupon_entries: CouponEntriesTable
  coupons: CouponsTable
  coupon_issues: CouponIssuesTable
  coupon_codes: CouponCodesTable
  coupon_code_pools: CouponCodePoolsTable
  events: EventsTable
  event_feed: EventFeedTable
  webhooks: WebhooksTable
  event_leases: EventLeasesTable
}

export function toDate(value: Date | string | number): Date {
  return value instanceof Date ? value : new Date(value)
}
