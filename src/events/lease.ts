/**
 * A lease in the database: one holder at a time per name, for `ttlMs` after its
 * last renewal. One conditional UPDATE takes or renews it, so of processes racing
 * for it exactly one gets it, on every dialect. A holder that dies (kill -9) is
 * replaced once its lease expires. Times are each process's clock: keep the
 * hosts' clocks in sync (NTP) to well within the TTL.
 *
 * The lease is not what keeps delivery correct on its own: a holder that stalls
 * past its TTL may still finish a POST after another took over (that event is
 * delivered twice: at least once), and the cursor advances by compare-and-set
 * (see webhooks-repo.ts), so it never moves backwards or skips.
 */
import type { Db } from '../db/database.js'

export async function tryLease(
  db: Db,
  name: string,
  holder: string,
  ttlMs: number,
  now = Date.now(),
): Promise<boolean> {
  const taken = await db
    .updateTable('event_leases')
    .set({ holder, expires_at: now + ttlMs })
    .where('name', '=', name)
    .where((eb) => eb.or([eb('holder', '=', holder), eb('expires_at', '<', now)]))
    .executeTakeFirst()
  if (Number(taken.numUpdatedRows) > 0) return true
  // No row yet: the first to insert it holds it.
  const exists = await db
    .selectFrom('event_leases')
    .select('name')
    .where('name', '=', name)
    .executeTakeFirst()
  if (exists) return false
  try {
    await db
      .insertInto('event_leases')
      .values({ name, holder, expires_at: now + ttlMs })
      .execute()
    return true
  } catch {
    return false
  }
}

/** Gives the lease up (a clean stop), so another process takes over at once. */
export async function releaseLease(db: Db, name: string, holder: string): Promise<void> {
  await db
    .updateTable('event_leases')
    .set({ expires_at: 0 })
    .where('name', '=', name)
    .where('holder', '=', holder)
    .execute()
}
