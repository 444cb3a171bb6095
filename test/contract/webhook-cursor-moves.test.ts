/**
 * An endpoint's cursor moves, written behind the POSTs (CursorMoves), on every
 * dialect:
 * - moves made while one is being written collapse into one write, and the
 *   cursor ends where the last move said, with its outcome;
 * - a cursor moved by someone else (another dispatcher, a delete) makes the
 *   moves stale: nothing more is written, and `written()` says false;
 * - a move made just as the write before it ends is written too, whatever the
 *   turn it lands in;
 * - with a spacing, moves made within it of the last write wait and go as one,
 *   and `written()` writes them at once instead of waiting it out.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
  UpdateQueryNode,
} from 'kysely'
import type { Db } from '../../src/db/database.js'
import { CursorMoves } from '../../src/events/webhook-batches.js'
import { findWebhook, insertWebhook } from '../../src/events/webhooks-repo.js'
import {
  createTestDatabase,
  DIALECTS,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import { waitFor, within } from '../helpers/wait.js'

/** Counts the UPDATE statements run through it. */
class Updates implements KyselyPlugin {
  count = 0

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (UpdateQueryNode.is(args.node)) this.count++
    return args.node
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}

for (const dialect of DIALECTS) {
  describe(`webhook cursor moves (${dialect})`, { skip: await skipUnlessDialect(dialect) }, () => {
    let t: TestDatabase
    let db: Db
    const endpoint = () =>
      insertWebhook(db, { url: 'http://127.0.0.1:9/in', types: ['coupon.issued'], secret: 's' })

    before(async () => {
      t = await createTestDatabase(dialect)
      db = t.database.db
    })
    after(() => t.drop())

    it('moves made while one is written collapse into one write; the last one stands', async () => {
      const w = await endpoint()
      const updates = new Updates()
      const moves = new CursorMoves(db.withPlugin(updates), w.id, w.deliveredSeq)
      const at = 1_796_000_000_000
      moves.move(100, { status: 200, at })
      moves.move(200, { status: 202, at: at + 1 })
      moves.move(300, null) // events of other types only: the last delivery's outcome stays
      moves.move(400, { status: 204, at: at + 2 })
      moves.move(500, null)
      assert.equal(moves.cursor, 500)
      assert.equal(await moves.written(), true)
      assert.equal(updates.count, 2, 'the first move, then the four made meanwhile as one')
      const row = await findWebhook(db, w.id)
      assert.equal(row?.deliveredSeq, 500)
      assert.equal(row?.lastStatus, 204)
      assert.equal(row?.lastSuccessAt, at + 2)
      moves.move(600, { status: 200, at: at + 3 })
      assert.equal(await moves.written(), true)
      assert.equal((await findWebhook(db, w.id))?.deliveredSeq, 600)
      assert.equal(updates.count, 3)
    })

    it('a move made as the write before it ends is written too', async () => {
      // The move lands `hops` microtasks after the first write's result: one of
      // them is the turn between that write's end and its bookkeeping.
      for (let hops = 0; hops < 40; hops++) {
        const w = await endpoint()
        let moves: CursorMoves | null = null
        let moved: Promise<void> | null = null
        const late: KyselyPlugin = {
          transformQuery: (args) => args.node,
          async transformResult(args) {
            if (moved === null) {
              let p = Promise.resolve()
              for (let i = 0; i < hops; i++) p = p.then(() => {})
              moved = p.then(() => moves?.move(200, { status: 200, at: 2 }))
            }
            return args.result
          },
        }
        moves = new CursorMoves(db.withPlugin(late), w.id, w.deliveredSeq)
        moves.move(100, { status: 200, at: 1 })
        assert.equal(await moves.written(), true)
        await moved
        assert.equal(await moves.written(), true)
        assert.equal(moves.cursor, 200, `after ${hops} hops`)
        assert.equal((await findWebhook(db, w.id))?.deliveredSeq, 200, `after ${hops} hops`)
      }
    })

    it('with a spacing, moves wait for it and go as one; written() does not wait it out', async () => {
      const w = await endpoint()
      const updates = new Updates()
      const moves = new CursorMoves(db.withPlugin(updates), w.id, w.deliveredSeq, 600_000)
      try {
        moves.move(100, { status: 200, at: 1 })
        await waitFor('the first move written', async () => {
          return (await findWebhook(db, w.id))?.deliveredSeq === 100
        })
        for (let i = 2; i <= 5; i++) {
          moves.move(i * 100, { status: 200, at: i })
          await sleep(10)
        }
        await sleep(100)
        assert.equal(updates.count, 1, 'the later moves wait for the spacing')
        assert.equal((await findWebhook(db, w.id))?.deliveredSeq, 100)
        assert.equal(moves.cursor, 500)
        assert.equal(await within(moves.written(), 10_000, 'still paused'), true)
      } finally {
        await moves.written().catch(() => {}) // no pause left running on a failure
      }
      assert.equal(updates.count, 2, 'the four waiting moves as one write')
      const row = await findWebhook(db, w.id)
      assert.equal(row?.deliveredSeq, 500)
      assert.equal(row?.lastSuccessAt, 5)
    })

    it('a cursor moved elsewhere: stale, and nothing more is written', async () => {
      const w = await endpoint()
      const updates = new Updates()
      const moves = new CursorMoves(db.withPlugin(updates), w.id, w.deliveredSeq)
      // Another dispatcher delivered meanwhile.
      await db.updateTable('webhooks').set({ delivered_seq: 50 }).where('id', '=', w.id).execute()
      moves.move(40, { status: 200, at: 1 })
      assert.equal(await moves.written(), false)
      assert.equal(moves.stale, true)
      moves.move(80, { status: 200, at: 2 })
      assert.equal(await moves.written(), false)
      assert.equal(updates.count, 1, 'no write after the one that found it elsewhere')
      assert.equal((await findWebhook(db, w.id))?.deliveredSeq, 50, 'never moved back')
    })
  })
}
