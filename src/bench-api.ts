/**
 * What the load generator (the workspace package packages/bench) may use of the
 * service, and all it imports of it: the configuration, the container (for
 * `bench drain`), the Redis keys and gate script (for `bench gate` and the
 * drain's clean-up), the database (for the duplicate-row checks), the messages
 * the API answers with, and how to start `firstcome` as a process.
 */
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LuaScript } from './redis/lua-script.js'

export { type Config, ConfigError, type Dialect, dialectOf, loadConfig } from './config.js'
export { type Container, createContainer } from './container.js'
export { findCoupon } from './db/coupons-repo.js'
export { openDatabase } from './db/database.js'
export { compatComments } from './http/compat-routes.js'
export { describeMode } from './mode.js'
export { connectRedis, createRedis } from './redis/connection.js'
export { RedisKeys } from './redis/keys.js'
export { type CouponStats, refusalMessages } from './service/issue-service.js'

/** The gate's issue script, as the Redis gate runs it. */
export const issueScript = new LuaScript(new URL('./gate/lua/issue.lua', import.meta.url))

const ext = extname(fileURLToPath(import.meta.url))

/**
 * How to start `firstcome` (main) as its own Node process: the module's path, and
 * the node options it needs (the TypeScript loader when run from the sources).
 */
export const firstcomeEntry: { path: string; execArgv: string[] } = {
  path: fileURLToPath(new URL(`./main${ext}`, import.meta.url)),
  execArgv: ext === '.ts' ? ['--import', import.meta.resolve('tsx')] : [],
}
