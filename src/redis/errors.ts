/**
 * Which Redis failures mean "unavailable, retry shortly" (503) and which are bugs.
 */
import { UnavailableError } from '../domain/errors.js'

/**
 * Replies a healthy client can get while the server is loading, failing over or
 * full; and a Cluster's redirects (MOVED, ASK) that reach the caller instead of
 * being followed, which happens while a slot changes hands.
 */
const TRANSIENT_REPLY =
  /^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|READONLY|MASTERDOWN|OOM|NOREPLICAS|MOVED|ASK)\b/

/**
 * A Cluster's redirect that reached the caller, or null: the command was not run
 * (a node answers MOVED or ASK before it runs anything), so it may be sent again.
 */
export function redirectOf(err: unknown): 'MOVED' | 'ASK' | null {
  const m = err instanceof Error ? /^(MOVED|ASK) /.exec(err.message) : null
  return m ? (m[1] as 'MOVED' | 'ASK') : null
}

export function toRedisFailure(err: unknown): Error {
  if (err instanceof UnavailableError) return err
  const e = err instanceof Error ? err : new Error(String(err))
  if (e.name === 'ReplyError' && !TRANSIENT_REPLY.test(e.message)) return e
  return new UnavailableError('redis', e)
}
