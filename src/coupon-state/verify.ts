/**
 * The worker's question to the gate's state, asked under the coupon's row lock
 * (see src/queue/persist/): are these wins the gate's, same user and same rank? A
 * win whose state was lost may have been handed to someone else by the rebuilt
 * gate, so it must never become a row (DB ⊆ Redis).
 */
import type { RedisClient } from '../redis/connection.js'
import { toRedisFailure } from '../redis/errors.js'
import { CODES } from './codes.js'
import type { StreamWin } from './entries.js'
import type { CouponKeys } from './keys.js'
import { scripts } from './scripts.js'

/** Wins as read-wins.lua packs them: user ids and ranks joined by commas. */
export interface PackedUsersRanks {
  users: string
  ranks: string
}

/** How many of the packed wins are not the gate's; NOT_LOADED: the gate holds no state. */
export async function countStrangers(
  client: RedisClient,
  k: CouponKeys,
  parts: readonly PackedUsersRanks[],
): Promise<number | 'NOT_LOADED'> {
  const answers = await Promise.all(
    parts.map((p) => scripts.verify.run(client, [k.meta, k.users], [p.users, p.ranks])),
  ).catch((err: unknown) => {
    throw toRedisFailure(err)
  })
  if (answers.includes(CODES.NOT_LOADED)) return 'NOT_LOADED'
  return answers.reduce<number>((n, a) => n + Number(a), 0)
}

/** The wins the gate knows and the others; NOT_LOADED: the gate holds no state. */
export async function sortByGate(
  client: RedisClient,
  k: CouponKeys,
  entries: readonly StreamWin[],
): Promise<{ known: StreamWin[]; unknown: StreamWin[] } | 'NOT_LOADED'> {
  const [loaded, values] = await Promise.all([
    client.exists(k.meta),
    client.hmget(k.users, ...entries.map((e) => e.win.userId)),
  ]).catch((err: unknown) => {
    throw toRedisFailure(err)
  })
  if (loaded === 0) return 'NOT_LOADED'
  const known: StreamWin[] = []
  const unknown: StreamWin[] = []
  entries.forEach((e, i) => {
    const value = values[i]
    const rank = value ? value.slice(0, value.indexOf(':')) : null
    if (rank === String(e.win.rank)) known.push(e)
    else unknown.push(e)
  })
  return { known, unknown }
}
