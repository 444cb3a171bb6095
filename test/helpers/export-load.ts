/**
 * Large exports and uploads against a server process: winners seeded straight
 * into the database, the server's resident memory sampled from /proc while it
 * works, a download read at the pace the caller chooses. Used by the streaming
 * test and by scripts/codes-figures.ts.
 */
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Kysely, sql } from 'kysely'
import type { Dialect } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { type Db, dialectOf } from '../../src/db/database.js'
import { rankGuard } from '../../src/db/migrations/003-rank-guard.js'
import { events } from '../../src/db/migrations/007-events.js'
import { MAX_CODES_PER_CALL } from '../../src/domain/codes.js'

/**
 * A coupon of `n`, won by users w0000001.. with ranks 1..n, each with a code:
 * the rows the stream worker and a `{"generate": n}` upload would store, written
 * by the database itself (a few INSERT … SELECT over the numbers 1..n), not sent
 * from here row by row. At most 1,000,000, as one upload of codes.
 */
export async function seedWinners(db: Db, n: number): Promise<number> {
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_CODES_PER_CALL))
    throw new Error(`seedWinners: 1..${MAX_CODES_PER_CALL} winners, not ${n}`)
  const now = new Date()
  const coupon = await insertCoupon(
    db,
    {
      title: 'export',
      totalQuantity: n,
      discountAmount: 1000,
      minAvailableAmount: 0,
      issueStart: new Date(now.getTime() - 3_600_000),
      issueEnd: new Date(now.getTime() + 3_600_000),
    },
    now,
  )
  const dialect = dialectOf(db)
  const ranks = numbers(dialect, n)
  if (dialect !== 'postgres')
    for (const t of ROW_TRIGGERS[dialect]) await sql`drop trigger ${sql.id(t)}`.execute(db)
  await db.transaction().execute(async (trx) => {
    // The database's guards (the rank trigger, the foreign keys) and the events
    // trigger are left out while it seeds: the rows are right by construction,
    // and a million events would cost the server's sequencer a feed id each
    // while it serves. PostgreSQL: for this transaction; the others: dropped,
    // and put back below by the migrations that wrote them (safe to run again).
    if (dialect === 'postgres') await sql`set local session_replication_role = replica`.execute(trx)
    if (dialect === 'mysql') await sql`set foreign_key_checks = 0`.execute(trx)
    await sql`
      insert into coupon_issues (coupon_id, user_id, ${sql.ref('rank')}, date_issued, date_created, date_updated)
      select ${coupon.id}, concat('w', ${sql.raw(padded(dialect, 7))}), r, ${now}, ${now}, ${now} from ${ranks}`.execute(
      trx,
    )
    await sql`
      insert into coupon_codes (coupon_id, seq, code)
      select ${coupon.id}, r, ${codeOf(dialect)} from ${ranks}`.execute(trx)
    if (dialect === 'mysql') await sql`set foreign_key_checks = 1`.execute(trx)
    await trx.insertInto('coupon_code_pools').values({ coupon_id: coupon.id, codes: n }).execute()
    await trx
      .updateTable('coupons')
      .set({ issued_quantity: n })
      .where('id', '=', coupon.id)
      .execute()
  })
  if (dialect !== 'postgres') {
    await rankGuard(dialect).up(db as Kysely<unknown>)
    await events(dialect).up(db as Kysely<unknown>)
  }
  return coupon.id
}

/** The row triggers on inserted wins (MySQL's run a statement each: most of its seeding). */
const ROW_TRIGGERS = {
  mysql: ['trg_coupon_issues_rank_insert', 'events_issued'],
  sqlite: ['trg_coupon_issues_rank', 'events_issued'],
}

/**
 * r with leading zeros to `width` digits, as SQL: text made from it sorts as the
 * ranks do, so the indexes on it are written in order instead of at random places.
 */
function padded(dialect: Dialect, width: number): string {
  if (dialect === 'postgres') return `lpad(r::text, ${width}, '0')`
  if (dialect === 'mysql') return `lpad(r, ${width}, '0')`
  return `substr('${'0'.repeat(width - 1)}' || r, -${width})`
}

/** The integers 1..n as a table `s` of one column `r`, in the dialect's terms. */
function numbers(dialect: Dialect, n: number) {
  if (dialect === 'postgres') return sql.raw(`generate_series(1, ${n}) as s(r)`)
  if (dialect === 'sqlite')
    return sql.raw(
      `(with recursive s(r) as (select 1 union all select r + 1 from s where r < ${n}) select r from s) as s`,
    )
  // MySQL 8 bounds a recursive CTE at 1,000 rows and has no sequence engine:
  // the digits' cross product, one table of ten per decimal place.
  const places = String(n - 1).length
  const digit = `(select 0 as d${Array.from({ length: 9 }, (_, i) => ` union all select ${i + 1}`).join('')})`
  const product = Array.from({ length: places }, (_, i) => `${digit} as d${i}`).join(' cross join ')
  const sum = Array.from({ length: places }, (_, i) => `d${i}.d * ${10 ** i}`).join(' + ')
  return sql.raw(`(select ${sum} + 1 as r from ${product}) as s where r <= ${n}`)
}

/**
 * Code number r as SQL: 'C' and r in 15 digits, 16 characters of the Crockford
 * alphabet like a generated code, unique by rank and in rank order.
 */
function codeOf(dialect: Dialect) {
  return sql.raw(`concat('C', ${padded(dialect, 15)})`)
}

/** The process's resident set size, bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/** Bytes the process has read through system calls so far (sockets and files alike). */
export function bytesReadBy(pid: number): number {
  const m = /^rchar:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
  return m ? Number(m[1]) : 0
}

/**
 * Waits until the process has stopped reading (less than `quietBytes` in a tenth
 * of a second); its bytes read by then.
 */
export async function readingStopped(pid: number, quietBytes = 32 * 1024, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  let last = bytesReadBy(pid)
  for (;;) {
    await sleep(100)
    const now = bytesReadBy(pid)
    if (now - last < quietBytes) return now
    if (Date.now() > deadline) throw new Error(`process ${pid} kept reading for ${timeoutMs} ms`)
    last = now
  }
}

/** Samples a process's RSS every `everyMs` until stopped; the highest seen. */
export function sampleRss(pid: number, everyMs = 25) {
  let max = rssOf(pid)
  const timer = setInterval(() => {
    max = Math.max(max, rssOf(pid))
  }, everyMs)
  return {
    stop() {
      clearInterval(timer)
      return Math.max(max, rssOf(pid))
    },
  }
}

export interface Download {
  status: number
  bytes: number
  lines: number
  ms: number
}

export interface DownloadOptions {
  token: string
  /** after the first chunk, read nothing for this long (a stalled client), then go on */
  pauseMs?: number
  /** called once the pause has lasted its time, with the bytes read so far */
  onPaused?: (bytesSoFar: number) => Promise<void> | void
  /** give up (close the connection) after this many bytes */
  abortAfterBytes?: number
}

/** Downloads the coupon's export, counting bytes and lines. */
export function download(base: string, couponId: number, o: DownloadOptions): Promise<Download> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/coupons/${couponId}/issues.csv`, {
      headers: { authorization: `Bearer ${o.token}` },
    })
    req.on('error', reject)
    req.on('response', (res) => {
      let bytes = 0
      let lines = 0
      let paused = o.pauseMs === undefined
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        // indexOf, not a JS loop over every byte: the client shares the CPUs with the server
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
        if (o.abortAfterBytes !== undefined && bytes >= o.abortAfterBytes) {
          req.destroy()
          resolve({ status: res.statusCode ?? 0, bytes, lines, ms: performance.now() - started })
          return
        }
        if (paused) return
        paused = true
        res.pause()
        sleep(o.pauseMs)
          .then(() => o.onPaused?.(bytes))
          .then(() => res.resume(), reject)
      })
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, bytes, lines, ms: performance.now() - started }),
      )
      res.on('error', reject)
    })
    req.end()
  })
}
