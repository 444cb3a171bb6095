/**
 * The service's backends, for the load generator's drain and gate benches and its
 * checks after a run (see bench-api.ts).
 */
import { scripts } from './coupon-state/scripts.js'

export { createContainer } from './container.js'
export { issueKeys } from './coupon-state/keys.js'
export { findCoupon } from './db/coupons-repo.js'
export { createDatabaseIfMissing } from './db/create-database.js'
export { openDatabase } from './db/database.js'
export { connectRedis, createRedis } from './redis/connection.js'

/** The gate's issue script, as the Redis gate runs it. */
export const issueScript = scripts.issue
/** The stamp issue.lua checks (stamp.lua): a coupon set up by hand needs it. */
export const stampScript = scripts.stamp
