/** The database as the GateSource that rebuilds a gate's state. */

import type { GateSource } from '../coupon-state/gate-source.js'
import { rulesOf } from '../domain/coupon.js'
import { codesFrom } from './codes-repo.js'
import { findCoupon, lockCoupons } from './coupons-repo.js'
import type { Db } from './database.js'
import { findDraw } from './draws-repo.js'
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
        })
      })
    },
  }
}
