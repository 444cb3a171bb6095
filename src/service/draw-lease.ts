/**
 * The draw's lease in Redis mode: SET NX PX on the coupon's lease key (its hash
 * tag, so it lives in the coupon's slot on Cluster), renewed while the draw runs.
 * A process killed mid-draw stops renewing: its lease expires after `ttlMs` and
 * another process draws again (the same result, see runner.ts).
 */
import { randomUUID } from 'node:crypto'
import { CODES } from '../coupon-state/codes.js'
import type { RedisKeys } from '../coupon-state/keys.js'
import { scripts } from '../coupon-state/scripts.js'
import type { RedisClient } from '../redis/connection.js'
import type { DrawLease } from './draw-runner.js'

export function redisDrawLease(client: RedisClient, keys: RedisKeys, ttlMs: number): DrawLease {
  return {
    async acquire(couponId) {
      const key = keys.coupon(couponId).drawLease
      const token = randomUUID()
      if ((await client.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') return null
      const acquiredAt = Date.now()
      let renewedAt = acquiredAt
      let lost = false
      const timer = setInterval(
        () => {
          scripts.renew
            .run(client, [key], [token, ttlMs])
            .then((code) => {
              if (code === CODES.OK) renewedAt = Date.now()
              else lost = true
            })
            .catch(() => {})
        },
        Math.max(50, Math.floor(ttlMs / 3)),
      )
      timer.unref()
      return {
        // Lost when found so, or when no renewal has been seen for longer than the
        // lease lives (the event loop or the network stalled): another process may
        // be drawing.
        held: () => !lost && Date.now() - renewedAt < ttlMs,
        async release() {
          clearInterval(timer)
          await scripts.unlock.run(client, [key], [token])
        },
      }
    },
  }
}
