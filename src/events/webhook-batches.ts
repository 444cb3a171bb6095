/**
 * The two halves of delivering to one endpoint around its POSTs: the batches
 * to send, read and built ahead, and the cursor moves, written behind.
 */
import type { Db } from '../db/database.js'
import { readFeedJson } from './feed.js'
import { advance, type Webhook } from './webhooks-repo.js'

export const WEBHOOK_BATCH = 100

export interface Batch {
  /** the POST's body; null: none of the endpoint's types up to `to` */
  body: string | null
  /** how many events it carries */
  events: number
  /** where the endpoint's cursor stands once it is delivered */
  to: number
}

/**
 * The endpoint's batches after its cursor. Reads `readAhead` events at a time,
 * every type, and keeps the endpoint's here (`seq > cursor order by seq limit
 * n` is an index walk on every dialect, whatever the planner knows of the
 * table); the next read is on its way while this one's batches are POSTed. A
 * body is the events' JSON text (feed.ts) joined: no event is parsed, copied
 * or serialised again here.
 */
export async function* batchesOf(db: Db, w: Webhook, readAhead: number): AsyncGenerator<Batch> {
  const types = new Set(w.types)
  const head = `{"webhookId":${w.id},"events":[`
  const readAfter = (after: number) => {
    const reading = readFeedJson(db, { after, limit: readAhead })
    reading.catch(() => {}) // a read-ahead dropped after a failed POST
    return reading
  }
  let reading = readAfter(w.deliveredSeq)
  for (;;) {
    const read = await reading
    const end = read.at(-1)?.id
    if (end === undefined) return
    if (read.length === readAhead) reading = readAfter(end)
    const events = read.filter((e) => types.has(e.type))
    if (events.length === 0) yield { body: null, events: 0, to: end }
    for (let i = 0; i < events.length; i += WEBHOOK_BATCH) {
      const batch = events.slice(i, i + WEBHOOK_BATCH)
      // The read's last batch takes the cursor past the others' events too.
      const last = i + WEBHOOK_BATCH >= events.length
      yield {
        body: `${head}${batch.map((e) => e.json).join(',')}]}`,
        events: batch.length,
        to: last ? end : (batch.at(-1)?.id ?? end),
      }
    }
    if (read.length < readAhead) return
  }
}

type Outcome = { status: number; at: number }

/**
 * An endpoint's cursor moves, written one at a time behind the POSTs. While
 * one is on its way to the database, or while the pause after it runs, the
 * later ones collapse into one, from where the database has the cursor to the
 * latest batch delivered: a POST never waits for a commit, and a fast
 * receiver costs a write every `spacingMs`, not one per batch. Each write is
 * a compare-and-set (webhooks-repo `advance`). A dispatcher killed between
 * two writes sends again the batches of up to the last `spacingMs` and the one
 * in flight (at least once); one whose cursor was moved elsewhere (a delete,
 * another dispatcher) learns it at its next write. `written()` writes what is
 * left at once.
 */
export class CursorMoves {
  readonly #db: Db
  readonly #id: number
  /** where the database has it */
  #written: number
  #next: { to: number; outcome: Outcome | null } | null = null
  #writing: Promise<void> | null = null
  #ok = true
  #error: unknown = null
  readonly #spacingMs: number
  /** when the last write started (performance.now()) */
  #lastWrite = Number.NEGATIVE_INFINITY
  /** ends the pause before the next write (set while it runs) */
  #endPause: (() => void) | null = null
  /** calls of written() waiting: no pause while there is one */
  #flushing = 0

  constructor(db: Db, id: number, from: number, spacingMs = 0) {
    this.#db = db
    this.#id = id
    this.#written = from
    this.#spacingMs = spacingMs
  }

  /** Where the cursor stands once every move is written. */
  get cursor(): number {
    return this.#next?.to ?? this.#written
  }

  /** A move found the cursor elsewhere (deleted, or another dispatcher moved it), or failed. */
  get stale(): boolean {
    return !this.#ok
  }

  /** The cursor to `to`; `outcome`: a batch delivered (null: skipped events). */
  move(to: number, outcome: Outcome | null): void {
    // A skip after a delivery keeps the delivery's outcome.
    this.#next = { to, outcome: outcome ?? this.#next?.outcome ?? null }
    // A write always waits for the database before it ends (#next is set), so
    // #write clears #writing only after it is set here.
    if (this.#writing === null && this.#ok) this.#writing = this.#write()
  }

  /** Resolves once every move is written: true if all took; rejects if one failed. */
  async written(): Promise<boolean> {
    this.#flushing++
    try {
      this.#endPause?.()
      while (this.#writing) await this.#writing
    } finally {
      this.#flushing--
    }
    if (this.#error !== null) throw this.#error
    return this.#ok
  }

  /** For `ms`, or until written() is called. */
  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.#endPause = () => {
        clearTimeout(timer)
        resolve()
      }
    })
    this.#endPause = null
  }

  async #write(): Promise<void> {
    try {
      while (this.#next && this.#ok) {
        // Moves made during the pause collapse into #next. No pause: the write
        // starts in this turn.
        const pause = this.#lastWrite + this.#spacingMs - performance.now()
        if (pause > 0 && this.#flushing === 0) await this.#pause(pause)
        this.#lastWrite = performance.now()
        const { to, outcome } = this.#next
        this.#next = null
        this.#ok = await advance(this.#db, this.#id, this.#written, to, outcome)
        if (this.#ok) this.#written = to
      }
    } catch (err) {
      this.#ok = false
      this.#error = err
    }
    // In the turn that found nothing more to write: a move made after it starts
    // a write of its own (cleared in a later reaction, one would be left unwritten).
    this.#writing = null
  }
}
