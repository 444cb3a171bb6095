/**
 * The feed's order on every dialect, at the database: the outbox trap.
 * - A transaction that took a smaller event id commits after one that took a
 *   larger id: the reader, having paged past the later one, still gets the
 *   earlier one (with a larger feed id), and the sequencer never waits on the
 *   open transaction.
 * - Writers holding transactions open for random times, two sequencers and a
 *   reader all at once: the reader sees every event exactly once, in feed
 *   order, and the same list as a read from 0 afterwards.
 * - The triggers: an insert skipped as a duplicate writes no event; a spend, a
 *   give-back and a sell-out each write one.
 * - Each event's JSON as the feed and webhooks send it: its type's fields, and
 *   the instants exactly as the rows hold them, written by the database.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Db } from '../../src/db/database.js'
import { insertWins, persistWins } from '../../src/db/issues-repo.js'
import { markUsed, unmarkUsed } from '../../src/db/spends-repo.js'
import { type FeedEvent, readFeed, readFeedJson, sequence } from '../../src/events/feed.js'
import {
  createTestDatabase,
  DIALECTS,
  insertRulesCoupon,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { within } from '../helpers/wait.js'

const HOUR = 3_600_000
const win = (couponId: number, userId: string, rank: number) => ({
  couponId,
  userId,
  rank,
  issuedAt: Date.now(),
})

async function readAll(db: Db, after = 0): Promise<FeedEvent[]> {
  const all: FeedEvent[] = []
  for (;;) {
    const items = await readFeed(db, { after, limit: 1000 })
    if (items.length === 0) return all
    all.push(...items)
    after = items.at(-1)?.id ?? after
  }
}

for (const dialect of DIALECTS) {
  describe(`events sequencer (${dialect})`, { skip: await skipUnlessDialect(dialect) }, () => {
    let t: TestDatabase
    let db: Db
    const coupon = (totalQuantity: number | null = null) =>
      insertRulesCoupon(db, {
        totalQuantity,
        issueStart: Date.now() - HOUR,
        issueEnd: Date.now() + HOUR,
      })

    before(async () => {
      t = await createTestDatabase(dialect)
      db = t.database.db
    })
    after(() => t.drop())

    it('an event committed late with a smaller id is not skipped', {
      skip: dialect === 'sqlite' && 'SQLite has one writer: no transaction commits out of order',
    }, async () => {
      const id = await coupon()
      await sequence(db)
      const start = (await readAll(db)).at(-1)?.id ?? 0
      let releaseEarly: () => void = () => {}
      const held = new Promise<void>((r) => {
        releaseEarly = r
      })
      let inserted: () => void = () => {}
      const early = new Promise<void>((r) => {
        inserted = r
      })
      // The early transaction takes the smaller event id and stays open.
      const slow = db.transaction().execute(async (trx) => {
        await insertWins(trx, [win(id, 'early', 1)], new Date())
        inserted()
        await held
      })
      await early
      await insertWins(db, [win(id, 'late', 2)], new Date())
      // The sequencer does not wait for the open transaction.
      const given = await within(sequence(db), 5000, 'blocked')
      assert.equal(given, 1)
      const first = await readAll(db, start)
      assert.deepEqual(
        first.map((e) => e.data.userId),
        ['late'],
      )
      releaseEarly()
      await slow
      assert.equal(await sequence(db), 1)
      const cursor = first.at(-1)?.id ?? 0
      const next = await readAll(db, cursor)
      assert.deepEqual(
        next.map((e) => e.data.userId),
        ['early'],
      )
      assert.ok((next[0]?.id ?? 0) > cursor)
    })

    it('writers, two sequencers and a reader at once: every event once, in order', {
      timeout: 120_000,
    }, async () => {
      const id = await coupon()
      await sequence(db)
      const start = (await readAll(db)).at(-1)?.id ?? 0
      const WRITERS = dialect === 'sqlite' ? 1 : 6
      const BATCHES = 15
      const PER = 20
      let writing = true
      const seen: FeedEvent[] = []
      const sequencers = [0, 1].map(async () => {
        while (writing) {
          await sequence(db, 7)
          await sleep(1)
        }
      })
      const reading = (async () => {
        let cursor = start
        while (writing || seen.length < WRITERS * BATCHES * PER) {
          const items = await readFeed(db, { after: cursor, limit: 13 })
          seen.push(...items)
          cursor = items.at(-1)?.id ?? cursor
          if (items.length === 0) {
            if (!writing) await sequence(db)
            await sleep(2)
          }
        }
      })()
      await Promise.all(
        Array.from({ length: WRITERS }, async (_, w) => {
          for (let b = 0; b < BATCHES; b++) {
            await db.transaction().execute(async (trx) => {
              const wins = Array.from({ length: PER }, (_, i) => {
                const n = (w * BATCHES + b) * PER + i
                return win(id, `w${n}`, n + 1)
              })
              await insertWins(trx, wins, new Date())
              await sleep(Math.random() * 15)
            })
          }
        }),
      )
      writing = false
      await Promise.all(sequencers)
      await reading
      const users = seen.map((e) => String(e.data.userId))
      assert.equal(new Set(users).size, users.length, 'no event twice')
      assert.equal(users.length, WRITERS * BATCHES * PER, 'every event')
      for (let i = 1; i < seen.length; i++) {
        assert.ok(Number(seen[i - 1]?.id) < Number(seen[i]?.id), `ids ascend at ${i}`)
      }
      assert.deepEqual(await readAll(db, start), seen)
    })

    it('the triggers: duplicates write nothing; use, give-back and sell-out write one each', async () => {
      const id = await coupon(2)
      await sequence(db)
      const start = (await readAll(db)).at(-1)?.id ?? 0
      const now = new Date()
      assert.equal(await persistWins(db, [win(id, 'a', 1)], now), 1)
      assert.equal(await persistWins(db, [win(id, 'a', 1)], now), 0) // a redelivery
      assert.equal(await persistWins(db, [win(id, 'b', 2)], now), 1) // sells out
      assert.ok(await markUsed(db, id, 'a', 'order-1', new Date()))
      assert.ok(!(await markUsed(db, id, 'a', 'order-2', new Date())))
      assert.ok(await unmarkUsed(db, id, 'a', 'order-1', new Date()))
      assert.ok(!(await unmarkUsed(db, id, 'a', 'order-1', new Date())))
      await sequence(db)
      const events = (await readAll(db, start)).map((e) => [e.type, e.data])
      assert.deepEqual(
        events.map(([type]) => type),
        [
          'coupon.issued',
          'coupon.issued',
          'coupon.sold_out',
          'coupon.used',
          'coupon.use_cancelled',
        ],
      )
      assert.deepEqual((events[2] as [string, Record<string, unknown>])[1].totalQuantity, 2)
      assert.equal((events[3] as [string, Record<string, unknown>])[1].orderId, 'order-1')
      assert.equal((events[4] as [string, Record<string, unknown>])[1].orderId, 'order-1')
    })

    it("each event's JSON: its type's fields, the rows' instants to the millisecond", async () => {
      const id = await coupon(1)
      await sequence(db)
      const start = (await readAll(db)).at(-1)?.id ?? 0
      // Milliseconds a double does not hold exactly (…412, …005), and a UTC day
      // that is another in Seoul.
      const persisted = new Date('2026-12-07T23:59:59.412Z')
      const issuedAt = Date.parse('2026-12-07T23:59:58.005Z')
      const used = new Date('2026-12-08T00:00:01.999Z')
      const given = new Date('2026-12-08T00:00:02.001Z')
      const order = 'o-"1"\\x'
      assert.equal(
        await persistWins(db, [{ couponId: id, userId: 'j', rank: 1, issuedAt }], persisted),
        1,
      )
      assert.ok(await markUsed(db, id, 'j', order, used))
      assert.ok(await unmarkUsed(db, id, 'j', order, given))
      await sequence(db)
      const encoded = await readFeedJson(db, { after: start, limit: 10 })
      for (const e of encoded) {
        assert.equal(e.json, JSON.stringify(JSON.parse(e.json)), 'compact JSON')
        assert.equal((JSON.parse(e.json) as FeedEvent).id, e.id)
      }
      const [issued, soldOut, use, cancel, ...rest] = encoded.map(
        (e) => JSON.parse(e.json) as FeedEvent,
      )
      assert.equal(rest.length, 0)
      const data = { couponId: id, userId: 'j', rank: 1 }
      assert.deepEqual(issued, {
        id: issued?.id,
        type: 'coupon.issued',
        createdAt: '2026-12-07T23:59:59.412Z',
        data: { ...data, issuedAt: '2026-12-07T23:59:58.005Z' },
      })
      assert.match(String(soldOut?.createdAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      assert.deepEqual(soldOut, {
        id: soldOut?.id,
        type: 'coupon.sold_out',
        createdAt: soldOut?.createdAt,
        data: { couponId: id, totalQuantity: 1, soldOutAt: soldOut?.createdAt },
      })
      assert.deepEqual(use, {
        id: use?.id,
        type: 'coupon.used',
        createdAt: '2026-12-08T00:00:01.999Z',
        data: { ...data, orderId: order, usedAt: '2026-12-08T00:00:01.999Z' },
      })
      assert.deepEqual(cancel, {
        id: cancel?.id,
        type: 'coupon.use_cancelled',
        createdAt: '2026-12-08T00:00:02.001Z',
        data: { ...data, orderId: order, cancelledAt: '2026-12-08T00:00:02.001Z' },
      })
    })
  })
}
