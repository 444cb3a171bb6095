/** The `rows` strategy (see strategy.ts): new entries read raw, written by the row path. */
import type { CouponStream } from '../coupon-stream.js'
import type { RowPersister } from './rows.js'
import { type NewWins, type PersistStrategy, type ReadSizes, readTransaction } from './strategy.js'

export class RowsStrategy implements PersistStrategy {
  readonly #rows: RowPersister
  readonly #sizes: ReadSizes

  constructor(rows: RowPersister, sizes: ReadSizes) {
    this.#rows = rows
    this.#sizes = sizes
  }

  async readNew(stream: CouponStream): Promise<NewWins> {
    const reads = await readTransaction(
      this.#sizes,
      () => stream.readNew(),
      (r) => r.length,
    )
    const entries = reads.flat()
    return {
      size: entries.length,
      persist: async () => this.#rows.persist(stream, await stream.parse(entries)),
    }
  }
}
