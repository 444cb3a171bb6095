/**
 * Codes uploaded while the gate (Redis) cannot be reached: the upload commits in
 * the database, then cannot raise the gate's limit. It answers 503 saying the
 * codes are stored; the limit stays at the codes the gate holds (never above the
 * committed ones), and once Redis is back the gate takes the stored codes in the
 * background, so the limit rises with nothing sent again.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createCoupon, requestIssue } from '../helpers/app.js'
import { storedCodes, uploadCodes } from '../helpers/codes.js'
import { type RedisSuiteOptions, redisSuite, skipUnlessRedisSuite } from '../helpers/redis-suite.js'
import { waitFor } from '../helpers/storm.js'

const SUITE: RedisSuiteOptions = { proxy: 'redis' }

describe('codes uploaded while Redis is down', { skip: await skipUnlessRedisSuite(SUITE) }, () => {
  const suite = redisSuite(SUITE)

  it('answers 503 (stored), keeps the old limit, and raises it once Redis is back', {
    timeout: 60_000,
  }, async (t) => {
    const s = await suite.start({}, t)
    const couponId = await createCoupon(s.app, { totalQuantity: 10 })
    assert.equal((await uploadCodes(s.app, couponId, { codes: ['D1', 'D2'] })).statusCode, 200)
    for (const u of ['a', 'b'])
      assert.equal((await requestIssue(s.app, couponId, u)).statusCode, 201)
    const k = suite.keys.coupon(couponId)

    await suite.proxy.cut()
    const res = await uploadCodes(s.app, couponId, { codes: ['D3', 'D4', 'D5'] })
    assert.equal(res.statusCode, 503, res.body)
    assert.match(res.json().message, /3 codes are stored/)
    assert.deepEqual((await storedCodes(suite.db, couponId)).codes, ['D1', 'D2', 'D3', 'D4', 'D5'])
    assert.equal(await suite.redis.hlen(k.codes), 2, 'the gate holds only what it took')

    await suite.proxy.restore()
    await waitFor('the gate to take the stored codes', async () => {
      return (await suite.redis.hlen(k.codes)) === 5
    })
    assert.deepEqual(await suite.redis.hgetall(k.codes), {
      1: 'D1',
      2: 'D2',
      3: 'D3',
      4: 'D4',
      5: 'D5',
    })
    const won = []
    for (const u of ['c', 'd', 'e', 'f']) {
      // the cache may still hold SOLD_OUT for a moment after Redis came back
      const res = await waitFor(`${u}'s answer`, async () => {
        const r = await requestIssue(s.app, couponId, u)
        return r.statusCode === 201 || u === 'f' ? r : null
      })
      won.push([res.statusCode, res.json().code])
    }
    assert.deepEqual(won, [
      [201, 'D3'],
      [201, 'D4'],
      [201, 'D5'],
      [409, 'SOLD_OUT'],
    ])
  })
})
