/**
 * The draw's public answers: its record once it has run, and its entrant list
 * (docs/draw.md, "The public record"). Read from the database, where the draw
 * writes both.
 */
import { Readable } from 'node:stream'
import { findCoupon } from '../db/coupons-repo.js'
import type { Db } from '../db/database.js'
import { entrantPages, findDraw } from '../db/draws-repo.js'
import { AppError } from '../domain/errors.js'
import type { DrawRecord } from '../draw/record.js'
import { DRAW_ALGORITHM } from '../draw/shuffle.js'

export class DrawRecords {
  readonly #db: Db

  constructor(db: Db) {
    this.#db = db
  }

  /** The record; 404 COUPON_NOT_FOUND, or NOT_FOUND while the coupon has no draw that has run. */
  async record(couponId: number): Promise<DrawRecord> {
    const drawn = await this.#drawn(couponId)
    return {
      drawAt: drawn.drawAt.toISOString(),
      commitment: drawn.commitment,
      seed: drawn.seed,
      quantity: drawn.quantity,
      entrants: drawn.entrants,
      winners: drawn.winners,
      entrantsDigest: drawn.entrantsDigest,
      algorithm: DRAW_ALGORITHM,
    }
  }

  /**
   * The entrant list as text, streamed: each pseudonym and a line feed, in
   * pseudonym order (exactly the bytes entrantsDigest hashes); `userIds`: the
   * plain user ids instead, in the same order (admin only).
   */
  async entrantList(couponId: number, userIds: boolean): Promise<Readable> {
    await this.#drawn(couponId)
    const pages = entrantPages(this.#db, couponId)
    return Readable.from(
      (async function* () {
        for await (const page of pages) {
          yield page.map((e) => `${userIds ? e.userId : e.pseudonym}\n`).join('')
        }
      })(),
    )
  }

  async #drawn(couponId: number) {
    const draw = await findDraw(this.#db, couponId)
    if (!draw?.drawn) {
      if (!(await findCoupon(this.#db, couponId)))
        throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
      throw new AppError('NOT_FOUND', `coupon ${couponId} has no draw that has run`)
    }
    return { ...draw.drawn, seed: draw.seed.toString('hex'), commitment: draw.commitment }
  }
}
