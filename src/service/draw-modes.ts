/**
 * How each mode runs the opening draw (docs/draw.md, "Running a draw"): where the
 * entrants are read, how the winners and the record are committed, and, in
 * embedded mode, which draws this process holds. DrawRunner takes one of these
 * with the steps common to both.
 */
import type { Db } from '../db/database.js'
import { type DrawOutcome, entrantPages, insertEntries, recordDraw } from '../db/draws-repo.js'
import { listWins, persistWins } from '../db/issues-repo.js'
import type { MemoryStockGate } from '../gate/memory-stock-gate.js'
import type { RedisStockGate } from '../gate/redis-stock-gate.js'
import type { Metrics } from '../ops/metrics.js'
import {
  DRAW_REQUEST_ID,
  type DrawnCoupon,
  type DrawRunnerOptions,
  localDrawLease,
} from './draw-runner.js'
import type { EntryRecorder } from './entry-recorder.js'

/** What a mode gives DrawRunner. */
export type DrawMode = Pick<
  DrawRunnerOptions,
  'lease' | 'entrants' | 'commit' | 'due' | 'next' | 'sync'
>

/** The draw's record, as both modes write it once the winners are the gate's. */
function outcomeOf(d: DrawnCoupon): DrawOutcome {
  return {
    drawAt: d.drawAt,
    quantity: d.quantity,
    entrants: d.pseudonyms.length,
    entrantsDigest: d.entrantsDigest,
    winners: d.winners,
  }
}

/**
 * Embedded mode. One process holds the stock: it draws the coupons its gate
 * holds, and takes a draw another process on the same database recorded
 * (winners as recorded).
 */
export function embeddedDraws(o: {
  db: Db
  gate: MemoryStockGate
  /** writes entries before they are answered */
  entries: EntryRecorder
  metrics: Metrics
}): DrawMode {
  const { db, gate } = o
  return {
    lease: localDrawLease(),
    due: async (now) => gate.dueDraws(now.getTime()),
    next: async () => gate.nextDrawAt(),
    async sync(couponId) {
      const wins = await listWins(db, couponId)
      await gate.enterWinners(
        couponId,
        wins.filter((w) => w.requestId === DRAW_REQUEST_ID).sort((a, b) => a.rank - b.rank),
      )
    },
    // Entries are written before they are answered: once the ones in hand are
    // written, the table holds every entry answered 202.
    async *entrants(couponId) {
      await o.entries.drain()
      for await (const page of entrantPages(db, couponId))
        yield { pseudonyms: page.map((e) => e.pseudonym), userIds: page.map((e) => e.userId) }
    },
    // The winners' rows and the record in one transaction: after a crash either
    // the whole draw is in the database or none of it (and it runs again).
    async commit(d) {
      await db.transaction().execute(async (trx) => {
        const inserted = await persistWins(trx, d.wins, new Date())
        o.metrics.persisted.inc({ coupon: String(d.couponId) }, inserted)
        await recordDraw(trx, d.couponId, outcomeOf(d), new Date())
      })
      await gate.enterWinners(d.couponId, d.wins)
    },
  }
}

/** Redis mode: every process may draw; the lease (in Redis) picks one per coupon. */
export function redisDraws(o: {
  db: Db
  gate: RedisStockGate
  lease: DrawRunnerOptions['lease']
}): DrawMode {
  const { db, gate } = o
  return {
    lease: o.lease,
    entrants: (couponId) => gate.entrantPages(couponId),
    // The winners enter the gate first (answerable at once, persisted by the
    // worker like any win); then the entrants and the record go to the database,
    // the record last: until it is there, the draw is not done and runs again.
    async commit(d) {
      await gate.enterWinners(d.couponId, d.wins)
      const entrants = d.pseudonyms.map((pseudonym, i) => ({
        pseudonym,
        userId: d.userIds[i] as string,
      }))
      await insertEntries(db, d.couponId, entrants)
      if (!d.leaseHeld()) throw new Error(`coupon ${d.couponId}: the draw's lease was lost`)
      await recordDraw(db, d.couponId, outcomeOf(d), new Date())
    },
  }
}
