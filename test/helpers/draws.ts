/**
 * Draws made with the documented functions, as the service will publish them:
 * the public record and the entrant list's text, for tests of the checks and of
 * `firstcome verify-draw`.
 */
import type { DrawRecord } from '../../src/draw/record.js'
import {
  commitmentOf,
  DRAW_ALGORITHM,
  drawWinners,
  entrantListText,
  entrantsOf,
} from '../../src/draw/shuffle.js'

export interface PublishedDraw {
  record: DrawRecord
  entrantList: string
  entrants: string[]
}

export function publishedDraw(
  seed: Uint8Array,
  userIds: string[],
  quantity: number,
): PublishedDraw {
  const entrants = entrantsOf(seed, userIds)
  const { entrantsDigest, winners } = drawWinners(seed, entrants, quantity)
  return {
    entrants,
    entrantList: entrantListText(entrants),
    record: {
      drawAt: '2026-11-24T11:00:00.000Z',
      commitment: commitmentOf(seed),
      seed: Buffer.from(seed).toString('hex'),
      quantity,
      entrants: entrants.length,
      winners,
      entrantsDigest,
      algorithm: DRAW_ALGORITHM,
    },
  }
}

/** A coupon's draw as the service publishes it, once it has run. */
export interface ServedDraw {
  record: DrawRecord
  entrantList: string
  /** pseudonyms, sorted */
  entrants: string[]
}

/** Waits for the draw's record, then reads it and the entrant list. */
export async function servedDraw(
  request: (path: string) => Promise<{ status: number; text: string }>,
  couponId: number,
  timeoutMs = 30_000,
): Promise<ServedDraw> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const res = await request(`/v1/coupons/${couponId}/draw`)
    if (res.status === 200) {
      const record = JSON.parse(res.text) as DrawRecord
      const list = await request(`/v1/coupons/${couponId}/draw/entrants`)
      if (list.status !== 200) throw new Error(`entrants: ${list.status} ${list.text}`)
      const entrants = list.text === '' ? [] : list.text.slice(0, -1).split('\n')
      return { record, entrantList: list.text, entrants }
    }
    if (Date.now() > deadline) throw new Error(`no draw record: ${res.status} ${res.text}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
