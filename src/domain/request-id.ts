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
