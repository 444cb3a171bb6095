/**
 * Issue storms over real sockets (an undici Pool) and the checks every storm
 * ends with: the answers, the rows and the gate must tell the same story.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import type { Db } from '../../src/db/database.js'

export interface IssueReply {
  userId: string
  status: number
  code: string | null
  rank: number | null
  retryAfter: string | null
  ms: number
}

export function httpPool(url: string, connections = 256): Pool {
  return new Pool(url, { connections, pipelining: 1, headersTimeout: 30_000 })
}

export async function issueOnce(pool: Pool, couponId: number, userId: string) {
  const started = performance.now()
  const res = await pool.request({
    method: 'POST',
    path: `/v1/coupons/${couponId}/issues`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  })
  const body = (await res.body.json()) as { code?: string; rank?: number }
  const retryAfter = res.headers['retry-after']
  return {
    userId,
    status: res.statusCode,
    code: body.code ?? null,
    rank: body.rank ?? null,
    retryAfter: typeof retryAfter === 'string' ? retryAfter : null,
    ms: performance.now() - started,
  } satisfies IssueReply
}

/** Every user's request at once (the Pool queues what its connections cannot carry). */
export function storm(pool: Pool, couponId: number, userIds: readonly string[]) {
  return Promise.all(userIds.map((u) => issueOnce(pool, couponId, u)))
}

/**
 * Keeps `concurrency` requests in flight, each for the next user, until `stop()`
 * (or the users run out). Used where the storm must straddle a fault.
 */
export function continuousStorm(
  pool: Pool,
  couponId: number,
  nextUser: () => string | null,
  concurrency: number,
) {
  const replies: IssueReply[] = []
  let stopped = false
  const lanes = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      const userId = nextUser()
      if (userId === null) return
      replies.push(await issueOnce(pool, couponId, userId))
    }
  })
  const done = Promise.all(lanes).then(() => replies)
  return {
    replies,
    done,
    async stop() {
      stopped = true
      return done
    },
  }
}

export function users(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`)
}

/** userId → rank of every 201; fails on a user answered 201 twice. */
export function winsOf(replies: readonly IssueReply[]): Map<string, number> {
  const wins = new Map<string, number>()
  for (const r of replies) {
    if (r.status !== 201) continue
    assert.ok(!wins.has(r.userId), `user ${r.userId} was answered 201 twice`)
    assert.ok(r.rank !== null && r.rank >= 1, `201 without a rank for ${r.userId}`)
    wins.set(r.userId, r.rank)
  }
  return wins
}

/** How many replies of each status/code, e.g. { '201': 300, '409 SOLD_OUT': 4700 }. */
export function tally(replies: readonly IssueReply[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of replies) {
    const key = r.status === 201 ? '201' : `${r.status} ${r.code}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown = null
  for (;;) {
    try {
      const value = await probe()
      if (value) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError })
    }
    await sleep(everyMs)
  }
}

export interface Stats {
  won: number
  persisted: number
  queued: number
  remaining: number | null
}

export async function getStats(pool: Pool, couponId: number): Promise<Stats> {
  const res = await pool.request({ method: 'GET', path: `/v1/coupons/${couponId}/stats` })
  const body = await res.body.json()
  if (res.statusCode !== 200) throw new Error(`stats: ${res.statusCode} ${JSON.stringify(body)}`)
  return body as Stats
}

/** Waits until the API says every win is persisted (`queued` = 0). */
export function waitDrained(pool: Pool, couponId: number, timeoutMs = 30_000): Promise<Stats> {
  return waitFor(
    `coupon ${couponId} to drain`,
    async () => {
      const stats = await getStats(pool, couponId)
      return stats.queued === 0 ? stats : null
    },
    timeoutMs,
  )
}

export interface IssueRowsView {
  /** userId → rank */
  ranks: Map<string, number>
  rows: number
  issuedQuantity: number
}

/**
 * Reads a coupon's rows and checks what must hold for any coupon at any time:
 * no duplicate (coupon, user), ranks unique and ≥ 1, issued_quantity = rows.
 */
export async function checkRows(db: Db, couponId: number): Promise<IssueRowsView> {
  const rows = await db
    .selectFrom('coupon_issues')
    .select(['user_id', 'rank'])
    .where('coupon_id', '=', couponId)
    .execute()
  const ranks = new Map<string, number>()
  const seenRanks = new Set<number>()
  for (const r of rows) {
    assert.ok(!ranks.has(r.user_id), `duplicate row for user ${r.user_id}`)
    const rank = Number(r.rank)
    assert.ok(rank >= 1, `rank ${rank} of ${r.user_id}`)
    assert.ok(!seenRanks.has(rank), `rank ${rank} given twice`)
    ranks.set(r.user_id, rank)
    seenRanks.add(rank)
  }
  const coupon = await db
    .selectFrom('coupons')
    .select('issued_quantity')
    .where('id', '=', couponId)
    .executeTakeFirstOrThrow()
  const issuedQuantity = Number(coupon.issued_quantity)
  assert.equal(issuedQuantity, rows.length, 'issued_quantity must equal the row count')
  return { ranks, rows: rows.length, issuedQuantity }
}

/** 1..n, for comparing sorted ranks. */
export function oneTo(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1)
}

export function sortedRanks(ranks: Iterable<number>): number[] {
  return [...ranks].sort((a, b) => a - b)
}

/** Every 201 has its row, with the rank the client was told. */
export function assertWinsPersisted(wins: Map<string, number>, view: IssueRowsView) {
  for (const [userId, rank] of wins) {
    assert.equal(view.ranks.get(userId), rank, `user ${userId} was told rank ${rank}`)
  }
}
