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
