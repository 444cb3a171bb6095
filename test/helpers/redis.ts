/**
 * Redis for tests: each test gets a key prefix of its own and deletes its keys.
 */
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { RedisClient } from '../../src/redis/connection.js'
import { SERVICES } from './services.js'

export const REDIS_URL = `redis://${SERVICES.redis.host}:${SERVICES.redis.port}/0`

export function uniquePrefix(): string {
  return `fctest:${randomBytes(4).toString('hex')}:`
}

export function redisClient(url = REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1 })
}

/** Deletes every key under the prefix (single node: SCAN covers every key). */
export async function deleteKeys(client: RedisClient, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await client.del(...keys)
    cursor = next
  } while (cursor !== '0')
}
