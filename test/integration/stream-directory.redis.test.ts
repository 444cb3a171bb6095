/**
 * Which coupon streams the workers poll: a coupon registered with the gate but
 * not yet committed is kept through a scan (a new coupon's first wins would
 * otherwise wait for the next one), one the database lacks at two scans in a row
 * and one whose window closed over an hour ago are retired once drained; the set
 * is read afresh for a worker that found nothing to do.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { RedisKeys } from '../../src/coupon-state/keys.js'
import { StreamDirectory } from '../../src/queue/stream-directory.js'
import { createTestDatabase, insertRulesCoupon, type TestDatabase } from '../helpers/databases.js'
import { deleteKeys, redisClient, uniquePrefix } from '../helpers/redis.js'
import { skipUnless } from '../helpers/services.js'

const HOUR_MS = 3_600_000
const SCAN_MS = 10_000

describe('the stream directory', { skip: await skipUnless('redis') }, () => {
  const client = redisClient()
  const prefix = uniquePrefix()
  const keys = new RedisKeys(prefix)
  let t: TestDatabase
  before(async () => {
    t = await createTestDatabase('sqlite')
  })
  after(async () => {
    await deleteKeys(client, prefix)
    client.disconnect()
    await t?.drop()
  })

  it('keeps a coupon not yet committed through a scan; retires it when still absent', async (tc) => {
    tc.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const pending = 987_654
    await client.sadd(keys.streams, String(pending))
    const directory = new StreamDirectory(client, keys, t.database.db)
    assert.deepEqual(await directory.couponIds(), [pending], 'the first scan keeps it')
    tc.mock.timers.tick(SCAN_MS)
    assert.deepEqual(await directory.couponIds(), [], 'absent at the second scan: retired')
  })

  it('keeps a committed coupon and retires one that ended over an hour ago', async (tc) => {
    const now = Date.now()
    tc.mock.timers.enable({ apis: ['Date'], now })
    const db = t.database.db
    const open = await insertRulesCoupon(db, {
      totalQuantity: 1,
      issueStart: now - HOUR_MS,
      issueEnd: now + HOUR_MS,
    })
    const ended = await insertRulesCoupon(db, {
      totalQuantity: 1,
      issueStart: now - 3 * HOUR_MS,
      issueEnd: now - 2 * HOUR_MS,
    })
    await client.sadd(keys.streams, String(open), String(ended))
    const directory = new StreamDirectory(client, keys, db)
    assert.deepEqual(await directory.couponIds(), [open])
  })
  it('reads the set afresh when asked (an idle worker), else at most every second', async (tc) => {
    tc.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const db = t.database.db
    const now = Date.now()
    const rules = { totalQuantity: 1, issueStart: now, issueEnd: now + HOUR_MS }
    const first = await insertRulesCoupon(db, rules)
    await client.del(keys.streams)
    await client.sadd(keys.streams, String(first))
    const directory = new StreamDirectory(client, keys, db)
    assert.deepEqual(await directory.couponIds(), [first])
    const second = await insertRulesCoupon(db, rules)
    await client.sadd(keys.streams, String(second))
    assert.deepEqual(await directory.couponIds(), [first], 'within the second: as read')
    assert.deepEqual((await directory.couponIds(true)).sort(), [first, second].sort())
  })
})
