/**
 * The wins of a coupon that Redis holds and the database may not yet: the
 * entries of its stream (waiting for a worker), and its dead letters that are
 * still the gate's wins (a win the database kept refusing, answered 201 all the
 * same; an entry dead-lettered because the gate no longer held it is not a win).
 */
import type { Win } from '../domain/coupon.js'
import type { RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { msOf, readQueuedWins } from './entries.js'
import type { CouponKeys } from './keys.js'

const CHUNK = 1000

export async function readQueued(
  client: RedisClient,
  k: Readonly<CouponKeys>,
  couponId: number,
): Promise<Win[]> {
  try {
    const wins = await readQueuedWins(client, k.stream, couponId)
    const dead = await readQueuedWins(client, k.dead, couponId)
    for (let i = 0; i < dead.length; i += CHUNK) {
      const chunk = dead.slice(i, i + CHUNK)
      // users: userId → "<rank>:<issuedAt>[:<requestId>]"
      const held = await client.hmget(k.users, ...chunk.map((w) => w.userId))
      chunk.forEach((w, j) => {
        const value = held[j]
        if (value && Number(value.slice(0, value.indexOf(':'))) === w.rank) wins.push(w)
      })
    }
    return wins
  } catch (err) {
    throw toRedisFailure(err)
  }
}

/** When the coupon's oldest win still waiting for a worker was won (epoch ms), or null. */
export async function oldestQueuedAt(
  client: RedisClient,
  k: Readonly<CouponKeys>,
): Promise<number | null> {
  const [first] = await client.xrange(k.stream, '-', '+', 'COUNT', 1)
  return first ? msOf(first[0]) : null
}
