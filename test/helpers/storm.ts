/**
 * Issue storms over real sockets (an undici Pool), each request's answer — or
 * the connection failure, where a storm straddles a killed server — recorded;
 * and the checks every storm ends with: the answers, the rows and the gate must
 * tell the same story.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import { dialectOf } from '../../src/config.js'
import { type Db, openDatabase } from '../../src/db/database.js'
import type { CouponStats } from '../../src/service/issue-service.js'
import { waitFor } from './wait.js'

export { waitFor }

export interface IssueReply {
  userId: string
  /** null when no HTTP answer came back (connection refused or reset, server killed) */
  status: number | null
  /** the `code` of an error body */
  code: string | null
  /** the rank of a 201 */
  rank: number | null
  retryAfter: string | null
  /** the JSON body (its text when it is not JSON); null without an answer */
  body: unknown
  /** why no answer came back */
  error: string | null
  /** from sending the request to the end of its body (or the failure) */
  ms: number
}

export function httpPool(url: string, connections: number): Pool {
  return new Pool(url, {
    connections,
    pipelining: 1,
    connectTimeout: 10_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
}

/**
 * A compatibility route (`/v1/issue`, `/v1/issue-async`, `/v2/issue-async`) takes
 * `{userId, couponId}` with an integer user; by default the request is the API's
 * `POST /v1/coupons/{couponId}/issues` with `{userId}`.
 */
export interface IssueOptions {
  compatRoute?: string
  /** more request headers (Idempotency-Key, …) */
  headers?: Record<string, string>
}

const fields = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}

/** One issue request. Never rejects: a connection failure is a reply with status null. */
export async function issueOnce(
  pool: Pool,
  couponId: number,
  userId: string | number,
  options: IssueOptions = {},
): Promise<IssueReply> {
  const started = performance.now()
  const { compatRoute } = options
  const reply = { userId: String(userId), retryAfter: null, body: null, error: null }
  try {
    const res = await pool.request({
      method: 'POST',
      path: compatRoute ?? `/v1/coupons/${couponId}/issues`,
      headers: { 'content-type': 'application/json', ...options.headers },
      body: JSON.stringify(compatRoute ? { userId, couponId } : { userId }),
    })
    const text = await res.body.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {}
    const { code, rank } = fields(body)
    const retryAfter = res.headers['retry-after']
    return {
      ...reply,
      status: res.statusCode,
      code: typeof code === 'string' ? code : null,
      rank: typeof rank === 'number' ? rank : null,
      retryAfter: typeof retryAfter === 'string' ? retryAfter : null,
      body,
      ms: performance.now() - started,
    }
  } catch (err) {
    const ms = performance.now() - started
    return { ...reply, status: null, code: null, rank: null, error: String(err), ms }
  }
}

export interface StormOptions extends IssueOptions {
  /** called with each reply as it comes (to kill or signal the server mid-storm) */
  onReply?: (reply: IssueReply) => void
}

/** Every user's request at once (the Pool queues what its connections cannot carry). */
export function storm(
  pool: Pool,
  couponId: number,
  userIds: readonly (string | number)[],
  options: StormOptions = {},
): Promise<IssueReply[]> {
  return Promise.all(
    userIds.map(async (u) => {
      const reply = await issueOnce(pool, couponId, u, options)
      options.onReply?.(reply)
      return reply
    }),
  )
}

/**
 * Keeps `lanes` requests in flight, each for a new user (`${prefix}0`,
 * `${prefix}1`, …), until `stop()` — or until the pool is closed, so a test that
 * failed before its `stop()` does not leave a storm running on a closed pool.
 * Used where the storm must straddle a fault. `rate`: at most that many requests
 * a second over all lanes (each lane pauses after each answer); none: as fast as
 * they are answered.
 */
export function continuousStorm(
  pool: Pool,
  couponId: number,
  prefix: string,
  lanes: number,
  onReply?: (reply: IssueReply) => void,
  rate?: number,
) {
  const replies: IssueReply[] = []
  let stopped = false
  let next = 0
  const pauseMs = rate ? (lanes * 1000) / rate : 0
  const done = Promise.all(
    Array.from({ length: lanes }, async () => {
      while (!stopped && !pool.closed && !pool.destroyed) {
        const reply = await issueOnce(pool, couponId, `${prefix}${next++}`)
        replies.push(reply)
        onReply?.(reply)
        if (pauseMs > 0 && !stopped) await sleep(pauseMs)
      }
    }),
  ).then(() => replies)
  return {
    replies,
    async stop() {
      stopped = true
      return done
    },
  }
}

/** A steady storm's requests a second, at most (see steadyStorm). */
export const STEADY_RATE = 1000

/**
 * A continuous storm at STEADY_RATE requests a second at most: for tests whose
 * claim is about a fault (wins before, during and after it, none lost), not
 * about the load's size. A storm at full speed takes every cycle the machine
 * has for as long as the fault lasts, from the test files running beside it;
 * one that sells out or is refused spins fastest of all.
 */
export function steadyStorm(
  pool: Pool,
  couponId: number,
  prefix: string,
  lanes: number,
  onReply?: (reply: IssueReply) => void,
) {
  return continuousStorm(pool, couponId, prefix, lanes, onReply, STEADY_RATE)
}

/** `${prefix}${from}` … `${prefix}${to - 1}` */
export function users(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`)
}

/**
 * Every id twice, shuffled (Fisher–Yates). `pick(i)` chooses the swap index in
 * 0..i: random by default, a fixed function for a reproducible order.
 */
export function twiceShuffled<T>(
  ids: readonly T[],
  pick = (i: number) => Math.floor(Math.random() * (i + 1)),
): T[] {
  const all = [...ids, ...ids]
  for (let i = all.length - 1; i > 0; i--) {
    const j = pick(i)
    ;[all[i], all[j]] = [all[j] as T, all[i] as T]
  }
  return all
}

/**
 * userId → rank of every 201. Fails on a user answered 201 twice, and on a
 * request that got no answer at all: whether it won is unknown, so the map would
 * be incomplete (a storm across a killed server leaves those out first).
 */
export function winsOf(replies: readonly IssueReply[]): Map<string, number> {
  const wins = new Map<string, number>()
  for (const r of replies) {
    assert.ok(r.status !== null, `no answer for ${r.userId}: ${r.error}`)
    if (r.status !== 201) continue
    assert.ok(!wins.has(r.userId), `user ${r.userId} was answered 201 twice`)
    assert.ok(r.rank !== null && r.rank >= 1, `201 without a rank for ${r.userId}`)
    wins.set(r.userId, r.rank)
  }
  return wins
}

/** `201`, `409 SOLD_OUT`, … or `no answer` */
function statusAndCode(r: IssueReply): string {
  if (r.status === null) return 'no answer'
  return r.status === 201 ? '201' : `${r.status} ${r.code}`
}

/** How many replies of each kind, e.g. { '201': 300, '409 SOLD_OUT': 4700 }. */
export function tally(
  replies: readonly IssueReply[],
  kind: (r: IssueReply) => string = statusAndCode,
): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of replies) {
    const key = kind(r)
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

export async function getStats(pool: Pool, couponId: number): Promise<CouponStats> {
  const res = await pool.request({ method: 'GET', path: `/v1/coupons/${couponId}/stats` })
  const body = await res.body.json()
  if (res.statusCode !== 200) throw new Error(`stats: ${res.statusCode} ${JSON.stringify(body)}`)
  return body as CouponStats
}

/** Waits until the API says every win is persisted (`queued` = 0). */
export function waitDrained(
  pool: Pool,
  couponId: number,
  timeoutMs = 30_000,
): Promise<CouponStats> {
  return waitFor(
    `coupon ${couponId} to drain`,
    async () => {
      const stats = await getStats(pool, couponId)
      return stats.queued === 0 ? stats : null
    },
    timeoutMs,
  )
}

/** The stats of a coupon sold out with every win persisted. */
export function soldOutStats(couponId: number, totalQuantity: number): CouponStats {
  return {
    couponId,
    totalQuantity,
    codes: 0,
    limit: totalQuantity,
    won: totalQuantity,
    persisted: totalQuantity,
    queued: 0,
    remaining: 0,
  }
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

/** checkRows over a connection of its own, for a database a server process writes. */
export async function checkRowsAt(databaseUrl: string, couponId: number): Promise<IssueRowsView> {
  const database = openDatabase(databaseUrl, dialectOf(databaseUrl), { poolSize: 1 })
  try {
    return await checkRows(database.db, couponId)
  } finally {
    await database.close()
  }
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
