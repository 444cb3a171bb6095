/**
 * The draw's public record, `GET /v1/coupons/{couponId}/draw`: what anyone needs
 * to recompute the winners from the entrant list. One schema for the route's
 * answer (and the OpenAPI document) and for `firstcome verify-draw`, which reads
 * it from the network and so checks it before trusting a field.
 */
import { type Static, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/** 32 bytes as 64 lowercase hex digits */
const hex64 = (description?: string) => Type.String({ pattern: '^[0-9a-f]{64}$', description })

export const DrawRecord = Type.Object({
  drawAt: Type.String({ description: 'when the draw was due (ISO-8601, UTC)' }),
  commitment: hex64('hex SHA-256 of the seed, shown on the coupon from the moment drawAt was set'),
  seed: hex64('the 32 secret bytes, revealed after the draw'),
  quantity: Type.Integer({
    minimum: 0,
    description: 'the coupons the draw was for: totalQuantity when it ran',
  }),
  entrants: Type.Integer({ minimum: 0, description: 'how many users entered' }),
  winners: Type.Array(hex64(), { description: 'pseudonyms of the winners, rank 1 first' }),
  entrantsDigest: hex64('hex SHA-256 of the entrant list (GET …/draw/entrants), byte for byte'),
  algorithm: Type.String({ description: 'firstcome-draw-v1: docs/draw.md' }),
})
export type DrawRecord = Static<typeof DrawRecord>

/** A record read from elsewhere, or what is wrong with it. */
export function parseDrawRecord(
  value: unknown,
): { ok: true; record: DrawRecord } | { ok: false; problems: string[] } {
  if (Value.Check(DrawRecord, value)) return { ok: true, record: value }
  const problems = [...Value.Errors(DrawRecord, value)].map(
    (e) => `${e.path || '(record)'}: ${e.message}`,
  )
  return { ok: false, problems: problems.slice(0, 5) }
}
