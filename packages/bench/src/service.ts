/**
 * The service, as the bench sees it: the `firstcome` package's declared surface
 * (its package.json "exports": `firstcome/bench-api`, with service-messages.ts,
 * service-backends.ts and service-draw.ts here for its three siblings), the
 * only modules of the service the bench imports. Run from the sources (node
 * --conditions=firstcome-source --import tsx), the surface resolves to
 * firstcome's src/; else to its build (dist/).
 */
export type { Config, Container, CouponStats, Dialect } from 'firstcome/bench-api'
export {
  ConfigError,
  describeMode,
  dialectOf,
  firstcomeEntry,
  loadConfig,
  RedisKeys,
} from 'firstcome/bench-api'
