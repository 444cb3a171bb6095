/**
 * The service, as the bench sees it: firstcome's src/bench-api.ts, the one module
 * of the service the bench imports. The bench lives in the firstcome repository
 * (packages/bench), so the surface is found next to it: the sources when the
 * bench runs from its sources (under tsx), the build (dist/) when it runs built.
 */
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Surface from '../../../src/bench-api.js'

const fromSources = extname(fileURLToPath(import.meta.url)) === '.ts'
const surface: typeof Surface = await import(
  new URL(fromSources ? '../../../src/bench-api.ts' : '../../../dist/bench-api.js', import.meta.url)
    .href
)

export type {
  Config,
  Container,
  CouponStats,
  Dialect,
} from '../../../src/bench-api.js'
export type ConfigError = Surface.ConfigError
export type RedisKeys = Surface.RedisKeys
export const {
  ConfigError,
  compatComments,
  connectRedis,
  createContainer,
  createRedis,
  describeMode,
  dialectOf,
  findCoupon,
  firstcomeEntry,
  issueScript,
  loadConfig,
  openDatabase,
  RedisKeys,
  refusalMessages,
} = surface
