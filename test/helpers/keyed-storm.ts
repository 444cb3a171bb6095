/** Issue storms where each request carries an Idempotency-Key of its own. */
import { httpPool, type IssueReply, issueOnce } from './storm.js'

/** The key one attempt of a user sends in these tests. */
export const keyOf = (userId: string) => `key-${userId}`

/**
 * Every user's request at once, each with `key(user)` (none for null), over a
 * pool of 200 connections to `url`.
 */
export async function keyedStorm(
  url: string,
  couponId: number,
  userIds: readonly string[],
  key: (userId: string) => string | null = keyOf,
  onReply?: (r: IssueReply) => void,
): Promise<IssueReply[]> {
  const pool = httpPool(url, 200)
  try {
    return await Promise.all(
      userIds.map(async (u) => {
        const k = key(u)
        const reply = await issueOnce(pool, couponId, u, {
          headers: k === null ? {} : { 'idempotency-key': k },
        })
        onReply?.(reply)
        return reply
      }),
    )
  } finally {
    await pool.destroy()
  }
}
