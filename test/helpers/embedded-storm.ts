/**
 * Real concurrency over real sockets: many issue requests at once through an
 * undici Pool, each answer (or connection failure) recorded; and the rows the
 * database holds afterwards.
 */
import { Pool } from 'undici'
import type { Db } from '../../src/db/database.js'

export interface IssueAnswer {
  userId: string
  /** null when no HTTP answer came back (connection refused, reset, killed server) */
  status: number | null
  /** the rank of a 201 */
  rank: number | null
  /** the `code` of an error body */
  code: string | null
  /** the whole JSON body, when there was one */
  body: unknown
  error: string | null
}

export function pool(url: string, connections: number): Pool {
  return new Pool(url, {
    connections,
    pipelining: 1,
    connectTimeout: 10_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
}

const record = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {}

async function post(
  p: Pool,
  path: string,
  payload: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await p.request({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  })
  const text = await res.body.text()
  let body: unknown = null
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: res.statusCode, body }
}

/** One `POST /v1/coupons/{id}/issues`; never rejects. */
export async function issue(p: Pool, couponId: number, userId: string): Promise<IssueAnswer> {
  try {
    const { status, body } = await post(p, `/v1/coupons/${couponId}/issues`, { userId })
    const b = record(body)
    return {
      userId,
      status,
      rank: typeof b.rank === 'number' ? b.rank : null,
      code: typeof b.code === 'string' ? b.code : null,
      body,
      error: null,
    }
  } catch (err) {
    return { userId, status: null, rank: null, code: null, body: null, error: String(err) }
  }
}

/** Every user's request at once (the pool spreads them over its connections). */
export function issueAll(
  p: Pool,
  couponId: number,
  userIds: readonly string[],
  onAnswer: (a: IssueAnswer) => void = () => {},
): Promise<IssueAnswer[]> {
  return Promise.all(
    userIds.map((u) =>
      issue(p, couponId, u).then((a) => {
        onAnswer(a)
        return a
      }),
    ),
  )
}

export interface CompatAnswer {
  userId: number
  status: number
  body: unknown
}

/** One request to a compatibility route (`/v1/issue`, …); rejects on a connection error. */
export async function compatIssue(
  p: Pool,
  path: string,
  couponId: number,
  userId: number,
): Promise<CompatAnswer> {
  const { status, body } = await post(p, path, { userId, couponId })
  return { userId, status, body }
}

export interface IssueRowLite {
  userId: string
  rank: number
}

export async function issueRows(db: Db, couponId: number): Promise<IssueRowLite[]> {
  const rows = await db
    .selectFrom('coupon_issues')
    .select(['user_id', 'rank'])
    .where('coupon_id', '=', couponId)
    .execute()
  return rows.map((r) => ({ userId: r.user_id, rank: Number(r.rank) }))
}

/** 1..n */
export const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

export const sortedNumbers = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b)

/** How many of each value. */
export function tally<T>(xs: Iterable<T>): Map<T, number> {
  const m = new Map<T, number>()
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1)
  return m
}
