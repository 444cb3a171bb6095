/**
 * A userId is a positive JSON integer or a string of 1..64 characters from
 * `[A-Za-z0-9_.:@-]`. Integers are normalised to their decimal string, so `7` and
 * `"7"` are the same user.
 */
export const USER_ID_PATTERN = '^[A-Za-z0-9_.:@-]{1,64}$'
const userIdRe = new RegExp(USER_ID_PATTERN)

export function normaliseUserId(value: unknown): string | null {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value > 0 ? String(value) : null
  }
  if (typeof value === 'string') return userIdRe.test(value) ? value : null
  return null
}
