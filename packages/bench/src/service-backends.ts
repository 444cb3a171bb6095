/**
 * The service's container, database, Redis connections and gate script
 * (firstcome's src/bench-api-backends.ts).
 */
import type * as Backends from '../../../src/bench-api-backends.js'
import { surfaceUrl } from './service.js'

const backends: typeof Backends = await import(surfaceUrl('bench-api-backends'))

export const {
  connectRedis,
  createContainer,
  createDatabaseIfMissing,
  createRedis,
  findCoupon,
  issueKeys,
  issueScript,
  openDatabase,
  stampScript,
} = backends
