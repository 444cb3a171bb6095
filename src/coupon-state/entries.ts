/**
 * The stream entry of a win, as issue.lua writes it: fields u (userId), r (rank),
 * t (issuedAt, epoch ms), k (the id of the request that won it; absent from
 * entries written before it was kept); and the same wins packed as columns by
 * read-wins.lua.
 */
import type { Win } from '../domain/coupon.js'
import type { RedisClient } from '../redis/connection.js'

export type RawEntry = [id: string, fields: string[]]

/** The instant of a stream entry id (`<ms>-<seq>`), in epoch ms. */
export const msOf = (id: string) => Number(id.slice(0, id.indexOf('-')))

export interface StreamWin {
  id: string
  win: Win
}

/** null for an entry that is not a well-formed win (a poison entry). */
export function parseEntry(couponId: number, entry: RawEntry): StreamWin | null {
  const [id, fields] = entry
  let userId: string | undefined
  let rank = Number.NaN
  let issuedAt = Number.NaN
  let requestId: string | undefined
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1] as string
    if (fields[i] === 'u') userId = value
    else if (fields[i] === 'r') rank = Number(value)
    else if (fields[i] === 't') issuedAt = Number(value)
    else if (fields[i] === 'k') requestId = value
  }
  if (!userId || !Number.isSafeInteger(rank) || rank < 1 || !Number.isSafeInteger(issuedAt))
    return null
  const win: Win = { couponId, userId, rank, issuedAt }
  if (requestId) win.requestId = requestId
  return { id, win }
}

/** A win's entry fields, as issue.lua writes them. */
export function entryFields(win: Win): string[] {
  const fields = ['u', win.userId, 'r', String(win.rank), 't', String(win.issuedAt)]
  if (win.requestId) fields.push('k', win.requestId)
  return fields
}

/**
 * Wins of one coupon packed as columns by read-wins.lua: each column one string,
 * its values joined by commas (the script packs only values that hold no comma),
 * in the same order. They travel to the database and back to Redis as these few
 * strings, with no JS string or object per win.
 */
export interface PackedWins {
  count: number
  ids: string
  users: string
  ranks: string
  issuedAts: string
  requestIds: string
}

/** The packed wins one by one (for the paths that must judge each win). */
export function unpackWins(couponId: number, packed: PackedWins): StreamWin[] {
  if (packed.count === 0) return []
  const ids = packed.ids.split(',')
  const users = packed.users.split(',')
  const ranks = packed.ranks.split(',')
  const issuedAts = packed.issuedAts.split(',')
  const requestIds = packed.requestIds.split(',')
  return ids.map((id, i) => ({
    id,
    win: {
      couponId,
      userId: users[i] as string,
      rank: Number(ranks[i]),
      issuedAt: Number(issuedAts[i]),
      requestId: requestIds[i] as string,
    },
  }))
}

const PAGE = 10_000

/** Every well-formed win still in a coupon's stream (answered, maybe not persisted). */
export async function readQueuedWins(
  client: RedisClient,
  stream: string,
  couponId: number,
): Promise<Win[]> {
  const wins: Win[] = []
  let start = '-'
  for (;;) {
    const page = (await client.xrange(stream, start, '+', 'COUNT', PAGE)) as RawEntry[]
    for (const entry of page) {
      const parsed = parseEntry(couponId, entry)
      if (parsed) wins.push(parsed.win)
    }
    if (page.length < PAGE) return wins
    start = `(${(page.at(-1) as RawEntry)[0]}`
  }
}
