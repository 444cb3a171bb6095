/**
 * Embedded mode: an entry is written to the database before it is answered 202,
 * as a win is (GroupCommitRecorder). The entries of one event-loop turn go in
 * one statement batch, one commit: a storm of entries costs a commit per turn,
 * not per request. A failed write rejects its entries (answered 503; the user
 * asks again, and an entry asked again is written again, idempotently), and
 * the gate is told (`EntryOutcomes`): a user it entered for that request is no
 * entrant, and not told ENTERED, until a write of the entry succeeds.
 */
import type { Db } from '../db/database.js'
import { type Entrant, insertEntries } from '../db/draws-repo.js'

interface Pending {
  couponId: number
  entrant: Entrant
  resolve: () => void
  reject: (err: unknown) => void
}

/** Told of each entry's write: the gate keeps an entrant only once it is written. */
export interface EntryOutcomes {
  written(couponId: number, userId: string, pseudonym: string): void
  failed(couponId: number, userId: string): void
}

export class EntryRecorder {
  readonly #db: Db
  readonly #outcomes: EntryOutcomes | undefined
  #pending: Pending[] = []
  #flushing: Promise<void> | null = null
  #scheduled = false

  constructor(db: Db, outcomes?: EntryOutcomes) {
    this.#db = db
    this.#outcomes = outcomes
  }

  record(couponId: number, userId: string, pseudonym: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ couponId, entrant: { pseudonym, userId }, resolve, reject })
      this.#schedule()
    })
  }

  /** Resolves once every entry handed over so far is written (or failed). */
  async drain(): Promise<void> {
    while (this.#pending.length > 0 || this.#flushing) {
      if (this.#flushing) await this.#flushing
      else await this.#flush()
    }
  }

  #schedule() {
    if (this.#scheduled || this.#flushing) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      void this.#flush()
    })
  }

  #flush(): Promise<void> {
    if (this.#flushing || this.#pending.length === 0) return this.#flushing ?? Promise.resolve()
    const batch = this.#pending
    this.#pending = []
    const byCoupon = new Map<number, Entrant[]>()
    for (const p of batch) {
      const list = byCoupon.get(p.couponId)
      if (list) list.push(p.entrant)
      else byCoupon.set(p.couponId, [p.entrant])
    }
    this.#flushing = this.#db
      .transaction()
      .execute(async (trx) => {
        for (const [couponId, entrants] of byCoupon) await insertEntries(trx, couponId, entrants)
      })
      .then(
        () => {
          for (const p of batch) {
            this.#outcomes?.written(p.couponId, p.entrant.userId, p.entrant.pseudonym)
            p.resolve()
          }
        },
        (err: unknown) => {
          for (const p of batch) {
            this.#outcomes?.failed(p.couponId, p.entrant.userId)
            p.reject(err)
          }
        },
      )
      .finally(() => {
        this.#flushing = null
        if (this.#pending.length > 0) this.#schedule()
      })
    return this.#flushing
  }
}
