/**
 * The entries a worker holds for another attempt, per coupon, and how many times
 * the database refused each one's row.
 *
 * Why in memory, when every held entry is also pending on this consumer in Redis:
 * reading one's own pending entries again (XREADGROUP with an id) raises their
 * delivery count, and an entry delivered more than WORKER_MAX_ATTEMPTS times is
 * taken for a poison entry when reclaimed (RedisStreamWorker's #reclaim): set
 * apart, persisted alone, dead-lettered if its row is refused. A batch retried
 * through an outage by re-reading it would pass that bound for the database's
 * trouble, not its own. So a failed
 * batch stays in hand here, and the pending list is read again only for what
 * nothing holds (after a failed pass or a reconnect, once; or a dead worker's,
 * by XAUTOCLAIM). The refusals are counted here for the same reason: the delivery
 * count cannot tell a refused row from an outage.
 */
import type { StreamWin } from '../../coupon-state/entries.js'

export class Held {
  readonly #entries = new Map<number, StreamWin[]>()
  readonly #refusals = new Map<string, number>()

  /** The coupon's held entries (still held). */
  of(couponId: number): StreamWin[] | undefined {
    return this.#entries.get(couponId)
  }

  /** The coupon's held entries, no longer held; none: undefined. */
  take(couponId: number): StreamWin[] | undefined {
    const entries = this.#entries.get(couponId)
    if (!entries?.length) return undefined
    this.#entries.delete(couponId)
    return entries
  }

  /** Holds entries for the next attempt, after those already held. */
  add(couponId: number, entries: StreamWin[]) {
    this.#entries.set(couponId, [...(this.#entries.get(couponId) ?? []), ...entries])
  }

  /** Counts one more refusal of the entry's row; the count so far. */
  refused(id: string): number {
    const n = (this.#refusals.get(id) ?? 0) + 1
    this.#refusals.set(id, n)
    return n
  }

  /** The entries are done with (persisted or dead-lettered). */
  done(ids: Iterable<string>) {
    for (const id of ids) this.#refusals.delete(id)
  }
}
