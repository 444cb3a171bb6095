/**
 * How many issue requests a client (by IP) and a user may make per second:
 * RATE_LIMIT_PER_IP and RATE_LIMIT_PER_USER. One core for both transports — the
 * fast lane and the Fastify routes ask the same limiter and answer the same 429 —
 * over rate-limiter-flexible: in memory in embedded mode, in Redis in Redis mode,
 * so the limit holds for the whole deployment rather than per process.
 */
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible'
import type { RedisClient } from '../redis/connection.js'

/** The answer to a request over a limit: 429 RATE_LIMITED with Retry-After. */
export interface Limited {
  retryAfterSeconds: number
  body: { readonly code: 'RATE_LIMITED'; readonly message: string }
}

export interface IssueLimits {
  /** whether a client limit is on (the Fastify routes then install its hook) */
  readonly perClient: boolean
  /** null without a limit; else whether this request of the client goes over it */
  client(ip: string): Promise<Limited | null> | null
  /** null without a limit; else whether this request of the user goes over it */
  user(userId: string): Promise<Limited | null> | null
}

export interface LimitsConfig {
  perIp: number | null
  perUser: number | null
}

/** The window of every limit: requests per second. */
const WINDOW_SECONDS = 1

type LimiterOf = (points: number, name: string) => RateLimiterAbstract

class FlexibleIssueLimits implements IssueLimits {
  readonly #client: Check | null
  readonly #user: Check | null
  readonly perClient: boolean

  constructor(config: LimitsConfig, limiterOf: LimiterOf, onError: (err: unknown) => void) {
    this.#client = config.perIp
      ? check(
          limiterOf(config.perIp, 'client'),
          `at most ${config.perIp} per second per client`,
          onError,
        )
      : null
    this.#user = config.perUser
      ? check(
          limiterOf(config.perUser, 'user'),
          `at most ${config.perUser} per second per user`,
          onError,
        )
      : null
    this.perClient = this.#client !== null
  }

  client(ip: string) {
    return this.#client ? this.#client(ip) : null
  }

  user(userId: string) {
    return this.#user ? this.#user(userId) : null
  }
}

type Check = (key: string) => Promise<Limited | null>

function check(limiter: RateLimiterAbstract, rule: string, onError: (err: unknown) => void): Check {
  const body = Object.freeze({
    code: 'RATE_LIMITED' as const,
    message: `Too many issue requests: ${rule}; retry after the Retry-After seconds.`,
  })
  return (key) =>
    limiter.consume(key).then(
      () => null,
      (rejected: unknown) => {
        if (rejected instanceof RateLimiterRes) {
          return { retryAfterSeconds: Math.max(1, Math.ceil(rejected.msBeforeNext / 1000)), body }
        }
        // The store failed (Redis down): the limit must not take the service down
        // with it, and the gate answers 503 for Redis anyway.
        onError(rejected)
        return null
      },
    )
}

/** Counted in this process (embedded mode: there is only one). */
export function memoryIssueLimits(config: LimitsConfig): IssueLimits {
  return new FlexibleIssueLimits(
    config,
    (points) => new RateLimiterMemory({ points, duration: WINDOW_SECONDS }),
    () => {},
  )
}

/** A store failing for every request is reported once per this long, not per request. */
const ERROR_REPORT_INTERVAL_MS = 10_000

/**
 * Counted in Redis under `${keyPrefix}limit:`, shared by every API process. A
 * key over its limit is also refused in this process's memory until its window
 * ends, so a flooding client costs no Redis round trip.
 */
export function redisIssueLimits(
  config: LimitsConfig,
  client: RedisClient,
  keyPrefix: string,
  onError: (err: unknown) => void,
): IssueLimits {
  let quietUntil = 0
  return new FlexibleIssueLimits(
    config,
    (points, name) =>
      new RateLimiterRedis({
        storeClient: client,
        keyPrefix: `${keyPrefix}limit:${name}`,
        points,
        duration: WINDOW_SECONDS,
        inMemoryBlockOnConsumed: points,
      }),
    (err) => {
      const now = Date.now()
      if (now < quietUntil) return
      quietUntil = now + ERROR_REPORT_INTERVAL_MS
      onError(err)
    },
  )
}
