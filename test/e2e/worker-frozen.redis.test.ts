/**
 * A `firstcome worker` process frozen (SIGSTOP) inside its transaction holds the
 * coupon's row lock. The server must end that transaction after the idle bound,
 * so another worker reclaims the frozen one's entries and persists every win;
 * when the frozen one wakes, it must not count a win twice. PostgreSQL and
 * MariaDB (MySQL has no idle-transaction timeout).
 */
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { sql } from 'kysely'
import type { Dialect } from '../../src/config.js'
import { createCoupon, winInProcess } from '../helpers/app.js'
import { INNODB_TRX_POLL_MS } from '../helpers/db-faults.js'
import { countIssues } from '../helpers/issue-counts.js'
import { scrapedValue } from '../helpers/metrics.js'
import type { ServiceProcess } from '../helpers/processes.js'
import { redisSuite, type Service, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import {
  assertWinsPersisted,
  checkRows,
  oneTo,
  sortedRanks,
  users,
  waitFor,
} from '../helpers/storm.js'

const WINS = 20_000

class RolledBack extends Error {}
const IDLE_TRANSACTION_TIMEOUT_MS = 1500
/** MySQL has no idle-transaction timeout; MariaDB has. */
const DIALECTS: Dialect[] = ['postgres', 'mysql']

for (const dialect of DIALECTS)
  describe(`a worker frozen inside its transaction (${dialect})`, {
    skip: await skipUnlessRedisSuite({ dialect }),
  }, () => {
    const suite = redisSuite({ dialect })
    let t: Service

    before(async () => {
      t = await suite.start({ worker: false })
    })

    /** The worker's sessions that have written in a transaction still open. */
    async function openWrites(worker: ServiceProcess): Promise<number> {
      if (dialect === 'postgres') {
        const r = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity
        where application_name = ${`firstcome core ${worker.pid}`}
          and backend_xid is not null`.execute(suite.db)
        return r.rows[0]?.n ?? 0
      }
      // MariaDB names no client process: the only sessions on this database with
      // locked rows are the worker's (the service above persists nothing).
      const database = new URL(suite.databaseUrl).pathname.slice(1)
      const r = await sql<{ n: number }>`
      select count(*) as n from information_schema.innodb_trx t
      join information_schema.processlist p on p.id = t.trx_mysql_thread_id
      where p.db = ${database} and t.trx_rows_locked > 0`.execute(suite.db)
      return Number(r.rows[0]?.n ?? 0)
    }

    /** Is one of the worker's statements waiting for a row lock? */
    async function waitingForLock(worker: ServiceProcess): Promise<boolean> {
      if (dialect === 'postgres') {
        const r = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity
        where application_name = ${`firstcome core ${worker.pid}`}
          and wait_event_type = 'Lock'`.execute(suite.db)
        return (r.rows[0]?.n ?? 0) > 0
      }
      const database = new URL(suite.databaseUrl).pathname.slice(1)
      const r = await sql<{ n: number }>`
      select count(*) as n from information_schema.innodb_trx t
      join information_schema.processlist p on p.id = t.trx_mysql_thread_id
      where p.db = ${database} and t.trx_state = 'LOCK WAIT'`.execute(suite.db)
      return Number(r.rows[0]?.n ?? 0) > 0
    }

    /** `n` looks at the transactions and sessions, 1.5 s apart: a wait may come and go. */
    async function snapshots(n: number): Promise<string> {
      const seen: string[] = []
      for (let i = 0; i < n; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 1500))
        seen.push(await transactions())
      }
      return seen.join('\n')
    }

    /** The worker's log lines at warn or above, each cut short of its stack. */
    function warnings(worker: ServiceProcess): string {
      return worker
        .output()
        .split('\n')
        .filter((line) => /"level":(40|50|60)/.test(line))
        .map((line) => line.replace(/"stack":"[^"]*"/, '"stack":"…"').slice(0, 1500))
        .join('\n')
    }

    /** The database's open transactions and what each waits for (MySQL: and its sessions), for a failure's message. */
    async function transactions(): Promise<string> {
      if (dialect === 'postgres') {
        const r =
          await sql`select pid, application_name, state, wait_event_type, wait_event, backend_xid::text, left(query, 120) as query
          from pg_stat_activity where datname = current_database()`.execute(suite.db)
        return `transactions ${JSON.stringify(r.rows)}`
      }
      const trx =
        await sql`select t.trx_mysql_thread_id, t.trx_state, t.trx_rows_locked, p.command, p.state, left(p.info, 120) as info
        from information_schema.innodb_trx t
        join information_schema.processlist p on p.id = t.trx_mysql_thread_id`.execute(suite.db)
      const sessions = await sql`select id, db, command, state, time, left(info, 100) as info
        from information_schema.processlist where db is not null`.execute(suite.db)
      return `transactions ${JSON.stringify(trx.rows)}\nsessions ${JSON.stringify(sessions.rows)}`
    }

    /**
     * Stops the worker at a moment it holds a written, uncommitted batch, on
     * purpose rather than by luck: a transaction of the test's own inserts the
     * coupon's last win first, uncommitted, so the worker's insert of that win
     * waits for it inside the worker's transaction (which holds the coupon's row
     * and the batch's rows written so far). Then the worker is stopped and the
     * test's insert rolled back: the worker's statement completes on the server,
     * and its transaction stays open with nobody to commit it.
     */
    async function freezeInTransaction(
      worker: ServiceProcess,
      couponId: number,
      last: { userId: string; rank: number },
    ) {
      await suite.db
        .transaction()
        .execute(async (trx) => {
          const now = new Date()
          await trx
            .insertInto('coupon_issues')
            .values({
              coupon_id: couponId,
              user_id: last.userId,
              rank: last.rank,
              date_issued: now,
              date_created: now,
              date_updated: now,
            })
            .execute()
          await waitFor(
            'the worker to reach the held win',
            () => waitingForLock(worker),
            60_000,
            INNODB_TRX_POLL_MS,
          ).catch(async (err: unknown) => {
            throw new Error(
              `${(err as Error).message}\n${await snapshots(3)}\nworker's warnings and errors:\n${warnings(worker)}`,
            )
          })
          worker.signal('SIGSTOP')
          throw new RolledBack()
        })
        .catch((err: unknown) => {
          if (!(err instanceof RolledBack)) throw err
        })
      await waitFor(
        'the worker frozen with its batch written',
        async () => (await openWrites(worker)) > 0,
        undefined,
        INNODB_TRX_POLL_MS,
      )
    }

    it('the other worker persists everything; the frozen one, woken, counts nothing twice', async (tc) => {
      const couponId = await createCoupon(t.app, { totalQuantity: null })
      const wins = await winInProcess(t, couponId, users('f', 0, WINS))
      const rows = () => countIssues(suite.db, couponId)
      const env = { DB_IDLE_TRANSACTION_TIMEOUT_MS: String(IDLE_TRANSACTION_TIMEOUT_MS) }

      const a = await suite.startWorkerProcess({
        ...env,
        WORKER_BATCH_SIZE: '50',
        WORKER_TX_ROWS: '500',
      })
      await waitFor('worker A to persist 1,000 rows', async () => (await rows()) >= 1000)
      const [lastUser, lastRank] = [...wins].reduce((a, b) => (b[1] > a[1] ? b : a))
      await freezeInTransaction(a, couponId, { userId: lastUser, rank: lastRank })
      const frozenAt = await rows()
      tc.diagnostic(`A frozen inside its transaction at ${frozenAt} rows`)
      assert.ok(frozenAt < WINS, 'A finished before it could be frozen')

      const b = await suite.startWorkerProcess({
        ...env,
        WORKER_BATCH_SIZE: '500',
        WORKER_CLAIM_IDLE_MS: '300',
      })
      const stream = suite.keys.coupon(couponId).stream
      await waitFor(
        `worker B to persist all ${WINS} wins while A is frozen`,
        async () =>
          (await rows()) === WINS &&
          (await suite.redis.xlen(stream)) === 0 &&
          (await suite.pending(couponId)) === 0,
        60_000,
      )
      // (waited for, not read once: innodb_trx may show rows up to one refresh old)
      await waitFor(
        "the server to have ended A's transaction",
        async () => (await openWrites(a)) === 0,
        10_000,
        INNODB_TRX_POLL_MS,
      )
      assertSettled(await checkRows(suite.db, couponId))

      a.signal('SIGCONT')
      // Let A find its transaction gone and go round its loop a few times.
      const passes = () => scrapedValue(a.metricsUrl, 'firstcome_worker_passes_total')
      const thawedAt = await passes()
      await waitFor(
        'A to go round its loop three times',
        async () => (await passes()) >= thawedAt + 3,
      )
      assertSettled(await checkRows(suite.db, couponId))
      for (const w of [a, b]) w.signal('SIGTERM')
      for (const w of [a, b]) {
        assert.deepEqual(await w.exited, { code: 0, signal: null }, w.output().slice(-4000))
      }
      assertSettled(await checkRows(suite.db, couponId))

      function assertSettled(view: Awaited<ReturnType<typeof checkRows>>) {
        assert.equal(view.rows, WINS)
        assert.equal(view.issuedQuantity, WINS)
        assertWinsPersisted(wins, view)
        assert.deepEqual(sortedRanks(view.ranks.values()), oneTo(WINS))
      }
    })
  })
