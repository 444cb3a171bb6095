/** The database as the source that rebuilds a gate's state. */

import type { GateSource, StoredCoupon } from '../coupon-state/gate-source.js'
import { rulesOf } from '../domain/coupon.js'
import { codesFrom } from './codes-repo.js'
import { findCoupon, listCoupons, lockCoupons } from './coupons-repo.js'
import type { Db } from './database.js'
import { entrantPages, findDraw, listOpenDraws } from './draws-repo.js'
import { listWins } from './issues-repo.js'

export function databaseGateSource(db: Db): GateSource {
  return {
    withCouponLocked(couponId, use) {
      return db.transaction().execute(async (trx) => {
        await lockCoupons(trx, [couponId])
        const coupon = await findCoupon(trx, couponId)
        const wins = coupon ? await listWins(trx, couponId) : []
        const drawn = coupon?.drawAt ? (await findDraw(trx, couponId))?.drawn != null : false
        // `use` must not touch the database outside this transaction (SQLite has
        // one connection, and it is ours until the commit).
        return use({
          rules: coupon ? rulesOf(coupon) : null,
          wins,
          drawn,
          readCodes: (fromSeq, max) => codesFrom(trx, couponId, fromSeq, max),
          readEntrants: () => entrantPages(trx, couponId),
        })
      })
    },
  }
}

/** Every coupon, with its wins, partner codes and draw's entrants: the in-process gate's start. */
export async function* storedCoupons(db: Db): AsyncGenerator<StoredCoupon> {
  const open = new Set(await listOpenDraws(db))
  for (const coupon of await listCoupons(db)) {
    const entrants = []
    if (coupon.drawAt !== null)
      for await (const page of entrantPages(db, coupon.id)) entrants.push(...page)
    yield {
      rules: rulesOf(coupon),
      wins: await listWins(db, coupon.id),
      drawn: coupon.drawAt !== null && !open.has(coupon.id),
      entrants,
      readCodes: (fromSeq, max) => codesFrom(db, coupon.id, fromSeq, max),
    }
  }
}
