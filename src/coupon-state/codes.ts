/**
 * The return codes of the coupon scripts (lua/*.lua): one table, each code one
 * meaning in every script. A script answers either a value (a rank, a count, an
 * entry id, a table; never negative) or one of these. 0 is OK only for scripts
 * that answer nothing else. The scripts spell the numbers out (Lua has no import);
 * test/unit/coupon-state-codes.test.ts holds every script to this table.
 */
export const CODES = {
  OK: 0,
  /** the coupon has no state in Redis: rebuild it from the database, then call again */
  NOT_LOADED: -1,
  ISSUE_NOT_STARTED: -2,
  ISSUE_ENDED: -3,
  /** another request of this user won */
  ALREADY_ISSUED: -4,
  SOLD_OUT: -5,
  /** the new quantity is below the wins already accepted; nothing changed */
  QUANTITY_BELOW_ISSUED: -6,
  /** the rebuild lock expired or was taken over; nothing changed */
  LOCK_LOST: -7,
  /**
   * the state is not stamped by this Redis server (it restarted, was replaced by a
   * replica, or the state was marked behind): catch up from the database, then
   * call again (stamp.lua)
   */
  BEHIND: -8,
  /** the coupon has a draw that has not run: its requests are entries (enter.lua) */
  DRAW_PENDING: -9,
  /** the coupon has no draw, or its draw has run: its requests are decided by issue.lua */
  NO_DRAW: -10,
  /** drawAt has passed and the draw is being run: answered DRAWING (retry shortly) */
  DRAWING: -11,
} as const

export type CodeName = keyof typeof CODES
