/**
 * A stream worker whose passes fail logs one `worker.error` line, not one per
 * pass: the line is an event for an operator, and a worker retrying every few
 * milliseconds must not flood the log.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import pino from 'pino'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { Metrics } from '../../src/ops/metrics.js'
import { RedisStreamWorker } from '../../src/queue/redis-stream-worker.js'
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { metricValue } from '../helpers/metrics.js'
import { waitFor } from '../helpers/wait.js'

describe('stream worker errors in the log', () => {
  let t: TestDatabase
  before(async () => {
    t = await createTestDatabase('sqlite')
  })
  after(async () => t?.drop())

  it('logs a failing worker once per interval and counts every failed pass', async () => {
    const lines: Record<string, unknown>[] = []
    const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) })
    // A Redis that is not there: every command fails at once.
    const client = new Redis({
      port: 1,
      host: '127.0.0.1',
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    client.on('error', () => {})
    const metrics = new Metrics()
    const worker = new RedisStreamWorker({
      client,
      keys: new RedisKeys('fctest:nowhere:'),
      db: t.database.db,
      logger,
      metrics,
      batchSize: 10,
      txRows: 10,
      claimIdleMs: 1000,
      maxAttempts: 3,
    }).start()
    // Backing off from 50 ms, passes fail well inside one log interval; each is counted.
    await waitFor(
      'two failed passes counted',
      async () => (await metricValue(metrics.workerPasses, { result: 'error' })) >= 2,
    )
    await worker.stop()
    client.disconnect()
    const errors = lines.filter((l) => l.event === 'worker.error')
    assert.equal(errors.length, 1, JSON.stringify(lines))
  })
})
