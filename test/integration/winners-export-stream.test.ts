// test-order: first — one of the longest files: started first, so that the run does not end waiting for it
/**
 * The winners' export streams: 1,000,000 rows through a server process on each
 * dialect, run as it ships (no V8 flags), whose resident memory stays within
 * 50 MB of what it holds idle while it sends them; a client that stalls leaves
 * the database's query open (the server read only what the client took, it did
 * not gather the file); a client that goes away stops the reading (no rest of
 * the result read and dropped) and gives its cursor back. The
 * server is embedded: its in-process gate holds the million wins and their
 * codes, the heap the export's garbage comes on top of.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { sql } from 'kysely'
import type { Dialect } from '../../src/config.js'
import type { Db } from '../../src/db/database.js'
import { ADMIN_TOKEN } from '../helpers/app.js'
import {
  createTestDatabase,
  DIALECTS,
  skipUnlessDialect,
  type TestDatabase,
} from '../helpers/databases.js'
import {
  bytesReadBy,
  download,
  readingStopped,
  rssOf,
  sampleRss,
  seedWinners,
} from '../helpers/export-load.js'
import { type ServerProcess, startServer, stopAll } from '../helpers/processes.js'

const ROWS = 1_000_000
const MB = 1024 * 1024
/** SPEC: what the server may hold, over its idle RSS, while it streams. */
const RSS_BOUND_MB = 50
/** What a download cut short may have read of the database (the whole export reads 58–131 MB). */
const CUT_READ_BOUND_MB = 16
/** Is the export's SELECT still open on the server (null: the dialect cannot tell)? */
async function exportQueryOpen(db: Db, dialect: Dialect): Promise<boolean | null> {
  if (dialect === 'sqlite') return null
  const query =
    dialect === 'postgres'
      ? sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
          where application_name like 'firstcome export%' and state <> 'idle'`
      : sql<{ n: number }>`select count(*) as n from information_schema.processlist
          where command = 'Query' and info like '%coupon_codes%' and id <> connection_id()`
  const { rows } = await query.execute(db)
  return Number(rows[0]?.n) > 0
}

for (const dialect of DIALECTS) {
  describe(`the winners' export streams, on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
    timeout: 600_000,
  }, () => {
    let db: TestDatabase
    let server: ServerProcess
    let couponId: number
    before(async () => {
      db = await createTestDatabase(dialect)
      couponId = await seedWinners(db.database.db, ROWS)
      server = await startServer({
        databaseUrl: db.url,
        adminToken: ADMIN_TOKEN,
        // restoring a million wins into the in-process gate takes a while
        timeoutMs: 300_000,
      })
    })
    after(async () => {
      if (server) await stopAll([server])
      await db?.drop()
    })

    it(`sends ${ROWS} rows within ${RSS_BOUND_MB} MB of idle RSS, reading only as the client does`, async () => {
      // Warm: the route's code loaded, one cursor opened and closed.
      await download(server.url, couponId, { token: ADMIN_TOKEN, abortAfterBytes: 64 * 1024 })
      const idle = rssOf(server.pid)
      const rss = sampleRss(server.pid)
      let openWhileStalled: boolean | null = null
      let readWhenStalled = 0
      const got = await download(server.url, couponId, {
        token: ADMIN_TOKEN,
        pauseMs: 200,
        onPaused: async () => {
          readWhenStalled = await readingStopped(server.pid)
          openWhileStalled = await exportQueryOpen(db.database.db, dialect)
        },
      })
      const peak = rss.stop()
      assert.equal(got.status, 200)
      assert.equal(got.lines, ROWS + 1, 'a header and every row')
      // The client stalled: the server stopped reading the database with most of
      // the rows still to come, and read them once the client went on.
      if (openWhileStalled !== null)
        assert.equal(openWhileStalled, true, 'query open while stalled')
      const readAfter = (bytesReadBy(server.pid) - readWhenStalled) / MB
      assert.ok(readAfter > 2, `read ${readAfter.toFixed(1)} MB after the stall`)
      const growth = (peak - idle) / MB
      console.log(
        `# ${dialect}: ${ROWS} rows, ${(got.bytes / MB).toFixed(1)} MB in ${got.ms.toFixed(0)} ms ` +
          `(stalled once), ${readAfter.toFixed(1)} MB read after the stall; ` +
          `RSS idle ${(idle / MB).toFixed(0)} MB, peak +${growth.toFixed(1)} MB`,
      )
      assert.ok(growth <= RSS_BOUND_MB, `RSS grew ${growth.toFixed(1)} MB over idle`)
    })

    it('stops reading and gives the cursor back when the client goes away: later downloads are served', async () => {
      for (let i = 0; i < 4; i++) {
        const before = bytesReadBy(server.pid)
        const cut = await download(server.url, couponId, {
          token: ADMIN_TOKEN,
          abortAfterBytes: 256 * 1024,
        })
        assert.equal(cut.status, 200)
        // What the server read for it, once its reads have stopped: a few pages,
        // not the rest of the million rows (tens of MB) read and dropped.
        const read = ((await readingStopped(server.pid)) - before) / MB
        assert.ok(
          read < CUT_READ_BOUND_MB,
          `a download cut after 256 KiB read ${read.toFixed(1)} MB`,
        )
      }
      const whole = await download(server.url, couponId, { token: ADMIN_TOKEN })
      assert.equal(whole.lines, ROWS + 1)
    })
  })
}
