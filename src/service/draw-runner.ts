/**
 * Runs each coupon's opening draw once, at its drawAt (docs/draw.md, "Running a
 * draw"). Every process that has the gate runs a DrawRunner (API processes and
 * workers alike); a lease makes one of them draw a coupon, and a process that
 * dies mid-draw loses its lease, so another takes over and draws again.
 *
 * Drawing again gives the same result: the seed was fixed when drawAt was set,
 * the entries were closed at the first attempt (the set is final), so the
 * entrant list, its digest and the winners are the same; entering the winners
 * skips those already in the gate, and the record is written once.
 *
 * A process asks for due draws only around a drawAt: it knows the earliest
 * drawAt of the draws not yet run (read at start, again on every change notice
 * of a coupon, and every RESYNC_MS in case a notice was lost) and sleeps until
 * then. From drawAt until no draw is due any more it looks every `intervalMs`,
 * so a process that sees another's lease expire (the other was killed mid-draw)
 * takes the draw over, as before.
 *
 * The steps: close the entries (from here requests are answered DRAWING), read
 * the entrants in pseudonym order and hash them, shuffle, then the mode's
 * `commit`: the winners enter the gate in drawn order, ranks 1..n (first-come
 * resumes for what is left), and the record is written. The record is what
 * "drawn" means to every process.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { countCodes } from '../db/codes-repo.js'
import { findCoupon, sharedQuantity } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { findDraw, listDueDraws, nextDrawAt } from '../db/draws-repo.js'
import { limitOf, type Win } from '../domain/coupon.js'
import { shuffledIndices, shuffleKey } from '../draw/shuffle.js'
import type { EntrantPage, StockGate } from '../gate/stock-gate.js'
import type { Metrics } from '../ops/metrics.js'

/** The request id the draw's wins carry. */
export const DRAW_REQUEST_ID = 'draw'

export interface HeldLease {
  /** false once the lease was found taken over or expired (the holder stalled) */
  held(): boolean
  release(): Promise<void>
}

export interface DrawLease {
  /** The coupon's lease, or null when another process holds it. */
  acquire(couponId: number): Promise<HeldLease | null>
}

export interface DrawnCoupon {
  couponId: number
  drawAt: Date
  quantity: number
  /** the entrants, pseudonym order */
  pseudonyms: string[]
  userIds: string[]
  entrantsDigest: string
  /** the winners, rank 1 first */
  wins: Win[]
  /** the winners' pseudonyms, rank 1 first */
  winners: string[]
  /** false once this process's lease is lost: a commit in steps stops before its record */
  leaseHeld: () => boolean
}

/** The earliest drawAt is read again this often, in case a change notice was lost. */
const RESYNC_MS = 5000
/** setTimeout takes at most 2^31-1 ms. */
const MAX_DELAY_MS = 86_400_000

export interface DrawRunnerOptions {
  db: Db
  gate: StockGate
  lease: DrawLease
  /** the entrants in pseudonym order, once the entries are closed */
  entrants(couponId: number): AsyncIterable<EntrantPage>
  /** makes the winners the gate's and the record the database's */
  commit(drawn: DrawnCoupon): Promise<void>
  /**
   * The coupons whose draw is due, as this process sees them (default: the
   * database's). Embedded mode asks its own gate: a process draws only the
   * coupons it holds.
   */
  due?: (now: Date) => Promise<number[]>
  /**
   * The earliest drawAt (epoch ms) of the draws not yet run as this process sees
   * them, due or not; null: none (default: the database's). Embedded mode asks
   * its own gate.
   */
  next?: () => Promise<number | null>
  /** change notices of coupons (a drawAt set, moved or taken off): the next drawAt is read again */
  subscribe?: (listener: () => void) => void
  /** the draw was found recorded (by another process): the gate takes its winners */
  sync?: (couponId: number) => Promise<void>
  logger?: Logger
  metrics?: Metrics
  /** how often the runner looks for a due draw while one is due */
  intervalMs?: number
  /** how often the earliest drawAt is read again without a notice (default RESYNC_MS) */
  resyncMs?: number
  now?: () => number
}

export class DrawRunner {
  readonly #o: DrawRunnerOptions
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #stopped = false
  /** the earliest drawAt of the draws not yet run; null: none */
  #next: number | null = null
  /** when #next was read (epoch ms); 0: to be read at the next turn */
  #readAt = 0
  /** a change notice came during a turn: the next turn starts at once */
  #again = false

  constructor(options: DrawRunnerOptions) {
    this.#o = options
  }

  start(): this {
    this.#o.subscribe?.(() => this.changed())
    this.#schedule(0)
    return this
  }

  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    await this.#running
  }

  /** A coupon changed: the earliest drawAt is read again, now. */
  changed(): void {
    this.#readAt = 0
    if (this.#stopped) return
    if (this.#running) {
      this.#again = true // the turn in hand schedules the next
      return
    }
    if (this.#timer) clearTimeout(this.#timer)
    this.#schedule(0)
  }

  #now(): number {
    return (this.#o.now ?? Date.now)()
  }

  #schedule(delayMs: number) {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      let next = this.#o.intervalMs ?? 200
      this.#running = this.#turn()
        .then((delay) => {
          next = delay
        })
        .catch((err: unknown) => {
          this.#readAt = 0
          this.#o.logger?.warn({ err }, 'could not look for due draws')
        })
        .finally(() => {
          this.#running = null
          const again = this.#again
          this.#again = false
          this.#schedule(again ? 0 : next)
        })
    }, delayMs)
    this.#timer.unref()
  }

  /**
   * One turn: the earliest drawAt read if stale, the due draws run if it has
   * come. Answers how long to sleep: until that drawAt (at most RESYNC_MS),
   * or `intervalMs` while a draw is due.
   */
  async #turn(): Promise<number> {
    const resync = this.#o.resyncMs ?? RESYNC_MS
    let now = this.#now()
    if (this.#readAt === 0 || now - this.#readAt >= resync) {
      this.#readAt = now
      this.#next = this.#o.next
        ? await this.#o.next()
        : ((await nextDrawAt(this.#o.db))?.getTime() ?? null)
    }
    if (this.#next !== null && this.#next <= now) {
      // Once none is due (every one drawn, here or elsewhere), the next drawAt is read again.
      if ((await this.runDue()) === 0) this.#readAt = 0
      return this.#o.intervalMs ?? 200
    }
    now = this.#now()
    const until = this.#next === null ? resync : Math.max(0, this.#next - now)
    return Math.max(0, Math.min(until, resync - (now - this.#readAt), MAX_DELAY_MS))
  }

  /** Runs every due draw that no other process is running; answers how many were due. */
  async runDue(): Promise<number> {
    const now = new Date(this.#now())
    const due = this.#o.due ? await this.#o.due(now) : await listDueDraws(this.#o.db, now)
    for (const couponId of due) {
      if (this.#stopped) break
      try {
        await this.run(couponId)
      } catch (err) {
        this.#o.logger?.error({ err, couponId }, `the draw of coupon ${couponId} failed; retrying`)
      }
    }
    return due.length
  }

  /** Draws the coupon if its draw is due and not done, holding its lease. */
  async run(couponId: number): Promise<boolean> {
    const lease = await this.#o.lease.acquire(couponId)
    if (!lease) return false
    try {
      return await this.#draw(couponId, lease)
    } finally {
      await lease.release().catch(() => {})
    }
  }

  async #draw(couponId: number, lease: HeldLease): Promise<boolean> {
    const { db, gate } = this.#o
    const started = performance.now()
    const draw = await findDraw(db, couponId)
    const coupon = await findCoupon(db, couponId)
    if (draw?.drawn) {
      await this.#o.sync?.(couponId)
      return false
    }
    if (!draw || !coupon?.drawAt) return false
    if (coupon.drawAt.getTime() > this.#now()) return false
    this.#o.logger?.info(
      { event: 'coupon.drawing', couponId, drawAt: coupon.drawAt.toISOString() },
      `drawing coupon ${couponId}`,
    )
    await gate.ensureLoaded(couponId)
    await gate.closeEntries(couponId)

    // The entrant list's digest, a page at a time (docs/draw.md, step 4). The
    // store gives them in order; that they are distinct, sorted pseudonyms is
    // checked on the way (a wrong list must fail the draw, not publish it).
    const hash = createHash('sha256')
    const pseudonyms: string[] = []
    const userIds: string[] = []
    let last = ''
    for await (const page of this.#o.entrants(couponId)) {
      const ps = page.pseudonyms
      if (ps.length === 0) continue
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i] as string
        if (p.length !== 64 || p <= last)
          throw new Error(
            `coupon ${couponId}: entrant ${pseudonyms.length + i + 1} is out of order`,
          )
        last = p
        pseudonyms.push(p)
        userIds.push(page.userIds[i] as string)
      }
      hash.update(`${ps.join('\n')}\n`)
    }
    const entrantsDigest = hash.digest('hex')
    // The coupons the draw is for: the quantity, or the partner codes while fewer
    // (a coupon with codes never has more wins than codes).
    // Read under a shared lock on the coupon's row: a quantity change whose check
    // (the draw not yet due) came just before drawAt commits first, and is read.
    const total = await db.transaction().execute((trx) => sharedQuantity(trx, couponId))
    const quantity = limitOf(total ?? null, await countCodes(db, couponId)) ?? 0
    const n = Math.min(quantity, pseudonyms.length)
    const drawAt = coupon.drawAt.getTime()
    const wins: Win[] = []
    const winners: string[] = []
    if (n > 0) {
      for (const index of shuffledIndices(
        shuffleKey(draw.seed, entrantsDigest),
        pseudonyms.length,
      )) {
        wins.push({
          couponId,
          userId: userIds[index] as string,
          rank: wins.length + 1,
          issuedAt: drawAt,
          requestId: DRAW_REQUEST_ID,
        })
        winners.push(pseudonyms[index] as string)
        if (wins.length === n) break
      }
    }
    // A process that stalled past its lease stops here: another has taken over.
    if (!lease.held()) throw new Error(`coupon ${couponId}: the draw's lease was lost`)
    await this.#o.commit({
      couponId,
      drawAt: coupon.drawAt,
      quantity,
      pseudonyms,
      userIds,
      entrantsDigest,
      wins,
      winners,
      leaseHeld: () => lease.held(),
    })
    const seconds = (performance.now() - started) / 1000
    this.#o.metrics?.drawDuration.observe(seconds)
    this.#o.metrics?.drawWinners.inc({ coupon: String(couponId) }, wins.length)
    this.#o.metrics?.drawEntrants.inc({ coupon: String(couponId) }, pseudonyms.length)
    this.#o.logger?.info(
      {
        event: 'coupon.drawn',
        couponId,
        entrants: pseudonyms.length,
        winners: wins.length,
        entrantsDigest,
        seconds,
      },
      `coupon ${couponId} drawn: ${wins.length} winners of ${pseudonyms.length} entrants`,
    )
    return true
  }
}

/** One process: the lease is a set of coupons being drawn here. */
export function localDrawLease(): DrawLease {
  const held = new Set<number>()
  return {
    async acquire(couponId) {
      if (held.has(couponId)) return null
      held.add(couponId)
      return {
        held: () => true,
        async release() {
          held.delete(couponId)
        },
      }
    },
  }
}
