/**
 * Which Redis failures mean "unavailable, retry shortly" (503) and which are bugs.
 */
import { UnavailableError } from '../domain/errors.js'

/** Replies a healthy client can get while the server is loading, failing over or full. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|READONLY|MASTERDOWN|OOM|NOREPLICAS)\b/

export function toRedisFailure(err: unknown): Error {
  if (err instanceof UnavailableError) return err
  const e = err instanceof Error ? err : new Error(String(err))
  if (e.name === 'ReplyError' && !TRANSIENT_REPLY.test(e.message)) return e
  return new UnavailableError('redis', e)
}
