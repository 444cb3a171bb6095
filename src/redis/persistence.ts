/**
 * What Redis's persistence lets a fault take, said once at start
 * (docs/operations.md, "When Redis loses data").
 */
import type { Logger } from 'pino'
import type { RedisClient } from './connection.js'

/** Logs it; CONFIG may be refused (a managed Redis): INFO then. */
export async function logPersistence(client: RedisClient, logger: Logger) {
  try {
    let appendonly: string | undefined
    let appendfsync: string | undefined
    try {
      const [, aof] = (await client.call('CONFIG', 'GET', 'appendonly')) as string[]
      const [, fsync] = (await client.call('CONFIG', 'GET', 'appendfsync')) as string[]
      appendonly = aof
      appendfsync = fsync
    } catch {
      const info = String(await client.call('INFO', 'persistence'))
      appendonly = /^aof_enabled:1/m.test(info) ? 'yes' : 'no'
    }
    const lossWindow =
      appendonly !== 'yes'
        ? 'wins not yet persisted when Redis restarts'
        : appendfsync === 'always'
          ? 'none'
          : appendfsync === 'everysec'
            ? 'about the last second of wins not yet persisted, on a power loss of the Redis host'
            : 'unknown (appendfsync not readable)'
    logger.info(
      { event: 'redis.persistence', appendonly, appendfsync, lossWindow },
      'Redis persistence: what a Redis data loss can take',
    )
  } catch (err) {
    logger.warn({ err }, 'could not read Redis persistence settings')
  }
}
