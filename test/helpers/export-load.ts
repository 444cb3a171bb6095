/**
 * Large exports and uploads against a server process: winners seeded straight
 * into the database, the server's resident memory sampled from /proc while it
 * works, a download read at the pace the caller chooses. Used by the streaming
 * test and by scripts/codes-figures.ts.
 */
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import type { Db } from '../../src/db/database.js'
import { insertWins } from '../../src/db/issues-repo.js'
import type { Win } from '../../src/domain/coupon.js'
import { CodePool } from '../../src/service/code-pool.js'

/** A coupon of `n`, won by users w1..wn with ranks 1..n, each with a generated code. */
export async function seedWinners(db: Db, n: number): Promise<number> {
  const now = Date.now()
  const coupon = await insertCoupon(
    db,
    {
      title: 'export',
      totalQuantity: n,
      discountAmount: 1000,
      minAvailableAmount: 0,
      issueStart: new Date(now - 3_600_000),
      issueEnd: new Date(now + 3_600_000),
    },
    new Date(),
  )
  const chunk = 20_000
  for (let from = 1; from <= n; from += chunk) {
    const wins: Win[] = []
    for (let r = from; r < from + chunk && r <= n; r++)
      wins.push({ couponId: coupon.id, userId: `w${r}`, rank: r, issuedAt: now })
    await db.transaction().execute((trx) => insertWins(trx, wins, new Date()))
  }
  await db.updateTable('coupons').set({ issued_quantity: n }).where('id', '=', coupon.id).execute()
  await new CodePool({ db }).add(coupon.id, { generate: n })
  return coupon.id
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
        for (const b of chunk) if (b === 10) lines++
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
