/**
 * The service, as the bench sees it: firstcome's src/bench-api.ts (with
 * service-messages.ts and service-backends.ts here, its two siblings), the only
 * modules of the service the bench imports. The bench lives in the firstcome
 * repository (packages/bench), so the surface is found next to it: the sources
 * when the bench runs from its sources (under tsx), the build (dist/) when it
 * runs built.
 */
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type * as Surface from '../../../src/bench-api.js'

const fromSources = extname(fileURLToPath(import.meta.url)) === '.ts'

/** The URL of one module of the service's surface, by name (`bench-api`, …). */
export function surfaceUrl(name: string): string {
  const path = fromSources ? `../../../src/${name}.ts` : `../../../dist/${name}.js`
  return new URL(path, import.meta.url).href
}

const surface: typeof Surface = await import(surfaceUrl('bench-api'))

export type { Config, Container, CouponStats, Dialect } from '../../../src/bench-api.js'
export type ConfigError = Surface.ConfigError
export type RedisKeys = Surface.RedisKeys
export const { ConfigError, describeMode, dialectOf, firstcomeEntry, loadConfig, RedisKeys } =
  surface
