/** webhooks rows: registration, where each endpoint stands, its lag. */
import type { Selectable } from 'kysely'
import type { Db } from '../db/database.js'
import { toDate, type WebhooksTable } from '../db/schema.js'
import { feedHead } from './feed.js'

export type WebhookState = 'active' | 'failing'

export interface Webhook {
  id: number
  url: string
  types: string[]
  secret: string
  deliveredSeq: number
  state: WebhookState
  attempts: number
  nextAttemptAt: number
  failingSince: number | null
  lastStatus: number | null
  lastError: string | null
  lastAttemptAt: number | null
  lastSuccessAt: number | null
  createdAt: number
}

/** A row as read: numbers, as the dialects' drivers give them back (see webhookOf). */
type Row = Selectable<WebhooksTable>

const n = (v: number | null) => (v === null ? null : Number(v))

function webhookOf(r: Row): Webhook {
  return {
    id: Number(r.id),
    url: r.url,
    types: r.types.split(','),
    secret: r.secret,
    deliveredSeq: Number(r.delivered_seq),
    state: r.state as WebhookState,
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    failingSince: n(r.failing_since),
    lastStatus: n(r.last_status),
    lastError: r.last_error,
    lastAttemptAt: n(r.last_attempt_at),
    lastSuccessAt: n(r.last_success_at),
    createdAt: Number(r.created_at),
  }
}

/** Registers an endpoint; it receives the events sequenced from now on. */
export async function insertWebhook(
  db: Db,
  w: { url: string; types: readonly string[]; secret: string },
  now = Date.now(),
): Promise<Webhook> {
  const values = {
    url: w.url,
    types: w.types.join(','),
    secret: w.secret,
    delivered_seq: await feedHead(db),
    state: 'active',
    attempts: 0,
    next_attempt_at: 0,
    created_at: now,
  }
  let id: number
  if (db.getExecutor().adapter.supportsReturning) {
    const row = await db
      .insertInto('webhooks')
      .values(values)
      .returning('id')
      .executeTakeFirstOrThrow()
    id = Number(row.id)
  } else {
    const result = await db.insertInto('webhooks').values(values).executeTakeFirstOrThrow()
    id = Number(result.insertId)
  }
  return (await findWebhook(db, id)) as Webhook
}

export async function findWebhook(db: Db, id: number): Promise<Webhook | null> {
  const row = await db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst()
  return row ? webhookOf(row as Row) : null
}

export async function listWebhooks(db: Db): Promise<Webhook[]> {
  const rows = await db.selectFrom('webhooks').selectAll().orderBy('id').execute()
  return rows.map((r) => webhookOf(r as Row))
}

export async function deleteWebhook(db: Db, id: number): Promise<boolean> {
  const result = await db.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** A failing endpoint is delivered to again, from where it stopped. */
export async function enableWebhook(db: Db, id: number): Promise<boolean> {
  const result = await db
    .updateTable('webhooks')
    .set({ state: 'active', attempts: 0, failing_since: null, next_attempt_at: 0 })
    .where('id', '=', id)
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/**
 * A batch delivered (or nothing of the endpoint's types up to `to`): the
 * cursor moves from `from` to `to`, only if it still stands at `from` (a
 * compare-and-set: two dispatchers overlapping never move it back).
 */
export async function advance(
  db: Db,
  id: number,
  from: number,
  to: number,
  outcome: { status: number; at: number } | null,
): Promise<boolean> {
  let update = db
    .updateTable('webhooks')
    .set({ delivered_seq: to })
    .where('id', '=', id)
    .where('delivered_seq', '=', from)
  if (outcome) {
    update = update.set({
      attempts: 0,
      failing_since: null,
      next_attempt_at: 0,
      last_status: outcome.status,
      last_error: null,
      last_attempt_at: outcome.at,
      last_success_at: outcome.at,
    })
  }
  const result = await update.executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/** A failed attempt: when to try again, and whether the endpoint is now failing. */
export async function recordFailure(
  db: Db,
  id: number,
  f: {
    from: number
    attempts: number
    nextAttemptAt: number
    failingSince: number
    failing: boolean
    status: number | null
    error: string
    at: number
  },
): Promise<void> {
  await db
    .updateTable('webhooks')
    .set({
      attempts: f.attempts,
      next_attempt_at: f.nextAttemptAt,
      failing_since: f.failingSince,
      state: f.failing ? 'failing' : 'active',
      last_status: f.status,
      last_error: f.error.slice(0, 500),
      last_attempt_at: f.at,
    })
    .where('id', '=', id)
    .where('delivered_seq', '=', f.from)
    .execute()
}

export interface Lag {
  /** events of its types sequenced and not yet delivered */
  events: number
  /** age of the oldest event it has not had (sequenced or not), seconds; 0: none */
  seconds: number
}

/**
 * How far behind an endpoint is. Events not yet sequenced count toward the
 * seconds (a stalled sequencer shows as lag), not the count.
 */
export async function lagOf(db: Db, w: Webhook, now = Date.now()): Promise<Lag> {
  const pending = db
    .selectFrom('events')
    .where('seq', '>', w.deliveredSeq)
    .where('type', 'in', w.types)
  const [count, oldest, unsequenced] = await Promise.all([
    pending.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst(),
    pending.select('occurred_at').orderBy('seq').limit(1).executeTakeFirst(),
    db
      .selectFrom('events')
      .select('occurred_at')
      .where('seq', 'is', null)
      .where('type', 'in', w.types)
      .orderBy('id')
      .limit(1)
      .executeTakeFirst(),
  ])
  const times = [oldest, unsequenced]
    .filter((r) => r !== undefined)
    .map((r) => toDate(r.occurred_at).getTime())
  const first = times.length ? Math.min(...times) : null
  return {
    events: Number(count?.n ?? 0),
    seconds: first === null ? 0 : Math.max(0, now - first) / 1000,
  }
}
