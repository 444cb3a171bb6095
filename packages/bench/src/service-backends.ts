/**
 * The service's container, database, Redis connections and gate script
 * (`firstcome/bench-api/backends`).
 */
export {
  connectRedis,
  createContainer,
  createDatabaseIfMissing,
  createRedis,
  findCoupon,
  issueKeys,
  issueScript,
  openDatabase,
  stampScript,
} from 'firstcome/bench-api/backends'
