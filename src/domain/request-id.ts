/**
 * An issue request's id, stored with its win so that the same request decided
 * twice (a call sent again after a reconnect) gets the same win, not
 * ALREADY_ISSUED. Unique per request across processes: a random prefix per
 * process and a counter (no allocation beyond the string). `~` keeps them apart
 * from client-chosen ids, whose alphabet has no `~`.
 */
import { randomBytes } from 'node:crypto'

const PREFIX = `~${randomBytes(9).toString('base64url')}.`
let next = 0

export function newRequestId(): string {
  next = (next + 1) % Number.MAX_SAFE_INTEGER
  return PREFIX + next.toString(36)
}

/**
 * A client's `Idempotency-Key`: 1..64 of `[A-Za-z0-9_.:-]`. Used as the request's
 * id, so the client's retry with the same key is the same request.
 */
export const IDEMPOTENCY_KEY_PATTERN = '^[A-Za-z0-9_.:-]{1,64}$'
const keyRe = new RegExp(IDEMPOTENCY_KEY_PATTERN)

export function isIdempotencyKey(value: unknown): value is string {
  return typeof value === 'string' && keyRe.test(value)
}
