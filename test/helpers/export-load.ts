/**
 * Large exports and uploads against a server process: winners seeded straight
 * into the database, the server's resident memory sampled from /proc while it
 * works, a download read at the pace the caller chooses. Used by the streaming
 * test and by scripts/codes-figures.ts.
 */
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { sql } from 'kysely'
import type { Dialect } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { type Db, dialectOf } from '../../src/db/database.js'
import { CROCKFORD, MAX_CODES_PER_CALL } from '../../src/domain/codes.js'

/**
 * A coupon of `n`, won by users w1..wn with ranks 1..n, each with a code: the
 * rows the stream worker and a `{"generate": n}` upload would store, written by
 * the database itself (a few INSERT … SELECT over the numbers 1..n), not sent
 * from here row by row. The codes are 16 Crockford base32 characters like the
 * generated ones, made from the rank by a bijection instead of drawn at random
 * (so unique without a check). At most 1,000,000, as one upload of codes.
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
  await db.transaction().execute(async (trx) => {
    await sql`
      insert into coupon_issues (coupon_id, user_id, ${sql.ref('rank')}, date_issued, date_created, date_updated)
      select ${coupon.id}, concat('w', r), r, ${now}, ${now}, ${now} from ${ranks}`.execute(trx)
    await sql`
      insert into coupon_codes (coupon_id, seq, code)
      select ${coupon.id}, r, ${codeOf(dialect)} from ${ranks}`.execute(trx)
    await trx.insertInto('coupon_code_pools').values({ coupon_id: coupon.id, codes: n }).execute()
    await trx
      .updateTable('coupons')
      .set({ issued_quantity: n })
      .where('id', '=', coupon.id)
      .execute()
  })
  return coupon.id
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
 * Code number r as SQL: two 40-bit numbers, r times an odd constant modulo 2^40
 * (one-to-one, so codes of distinct ranks differ), as eight base32 digits each.
 * The products stay below 2^63 for r up to 2^21: no dialect overflows.
 */
function codeOf(dialect: Dialect) {
  const digit = (x: string, shift: number) => {
    const at = `((${x} >> ${shift}) & 31) + 1`
    return `substr('${CROCKFORD}', ${dialect === 'postgres' ? `(${at})::int` : at}, 1)`
  }
  const part = (multiplier: number) =>
    Array.from({ length: 8 }, (_, i) => digit(`((r * ${multiplier}) % ${2 ** 40})`, 35 - 5 * i))
  return sql.raw(`concat(${[...part(0x16a09e667f3), ...part(0x1bb67ae8585)].join(', ')})`)
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
