/**
 * What the load generator (the workspace package packages/bench) may use of the
 * service, and all it imports of it, in four modules so that each of its
 * processes loads no more of the service than it needs (the baseline server and
 * the delaying proxy are measured):
 *
 *   bench-api.ts           the configuration, the Redis keys, how to start `firstcome`
 *   bench-api-messages.ts  the messages the API answers with
 *   bench-api-backends.ts  the container, the database, Redis and the gate's script
 *   bench-api-draw.ts      the opening draw's check (verify-draw's)
 */
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'

export { type Config, ConfigError, type Dialect, dialectOf, loadConfig } from './config.js'
export type { Container } from './container.js'
export { RedisKeys } from './coupon-state/keys.js'
export { describeMode } from './mode.js'
export type { CouponStats } from './service/issue-service.js'

const ext = extname(fileURLToPath(import.meta.url))

/**
 * How to start `firstcome` (main) as its own Node process: the module's path, and
 * the node options it needs (from the sources: the TypeScript loader, and the
 * package.json "exports" condition that resolves the workspace packages to theirs).
 */
export const firstcomeEntry: { path: string; execArgv: string[] } = {
  path: fileURLToPath(new URL(`./main${ext}`, import.meta.url)),
  execArgv:
    ext === '.ts' ? ['--conditions=firstcome-source', '--import', import.meta.resolve('tsx')] : [],
}
