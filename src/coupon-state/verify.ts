/**
 * The gate's state asked, under the coupon's row lock, whether wins are its own:
 * same user, same rank (see src/queue/persist/verified-wins.ts, which asks). A win
 * whose state was lost may have been handed to someone else by the rebuilt gate,
 * so it must never become a row (DB ⊆ Redis). Both questions compare alike: the
 * user's value starts with the rank, then ':'.
 */
import type { Win } from '../domain/coupon.js'
import type { RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { CODES } from './codes.js'
import type { PackedWins } from './entries.js'
import type { CouponKeys } from './keys.js'
import { scripts } from './scripts.js'

/** The coupon's gate state as a verifier of its wins; NOT_LOADED: it holds none. */
export function redisVerifier(client: RedisClient, k: CouponKeys) {
  return {
    /** Per win (one HMGET): the gate holds it. */
    async holds(wins: readonly Win[]): Promise<boolean[] | 'NOT_LOADED'> {
      const [loaded, values] = await Promise.all([
        client.exists(k.meta),
        client.hmget(k.users, ...wins.map((w) => w.userId)),
      ]).catch((err: unknown) => {
        throw toRedisFailure(err)
      })
      if (loaded === 0) return 'NOT_LOADED'
      return wins.map((w, i) => {
        const value = values[i]
        return value?.startsWith(`${w.rank}:`) ?? false
      })
    },

    /** How many packed wins the gate does not hold: one number per read (verify.lua). */
    async strangers(
      parts: readonly Pick<PackedWins, 'users' | 'ranks'>[],
    ): Promise<number | 'NOT_LOADED'> {
      const answers = await Promise.all(
        parts.map((p) => scripts.verify.run(client, [k.meta, k.users], [p.users, p.ranks])),
      ).catch((err: unknown) => {
        throw toRedisFailure(err)
      })
      if (answers.includes(CODES.NOT_LOADED)) return 'NOT_LOADED'
      return answers.reduce<number>((n, a) => n + Number(a), 0)
    },
  }
}
