import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { KnownCoupons } from '../../src/service/known-coupons.js'
import { waitFor } from '../helpers/wait.js'

describe('KnownCoupons', () => {
  it('answers a known id at once, and unknown ids asked together with one read', async () => {
    let reads = 0
    const known = new KnownCoupons(
      async () => {
        reads++
        return [1, 2, 3]
      },
      { refreshMs: 20 },
    )
    const asked = await Promise.all(Array.from({ length: 1000 }, (_, i) => known.exists(i + 1)))
    assert.equal(reads, 1)
    assert.deepEqual(asked.map((e, i) => (e ? i + 1 : 0)).filter(Boolean), [1, 2, 3])
    assert.equal(known.exists(2), true, 'synchronous once known')
    known.add(7)
    assert.equal(known.exists(7), true)
    assert.equal(reads, 1)
  })

  it('an id asked while a read is under way waits for the next read', async () => {
    const table = [1]
    let release: () => void = () => {}
    let reads = 0
    const known = new KnownCoupons(
      async () => {
        reads++
        const rows = [...table]
        if (reads === 1) await new Promise<void>((resolve) => (release = resolve))
        return rows
      },
      { refreshMs: 10 },
    )
    const first = known.exists(5)
    await waitFor('the first read under way', () => reads === 1)
    // Created after the first read looked at the table.
    table.push(5)
    const second = known.exists(5)
    release()
    assert.equal(await first, false)
    assert.equal(await second, true)
    assert.equal(reads, 2)
  })

  it('a failed read fails its askers; the next ask reads again', async () => {
    let fail = true
    const known = new KnownCoupons(
      async () => {
        if (fail) throw new Error('database down')
        return [4]
      },
      { refreshMs: 1 },
    )
    await assert.rejects(Promise.resolve(known.exists(4)), /database down/)
    fail = false
    assert.equal(await known.exists(4), true)
  })

  it('find calls the finder only for a coupon that exists', async () => {
    const known = new KnownCoupons(async () => [9], { refreshMs: 1 })
    const found: number[] = []
    const finder = async (id: number) => {
      found.push(id)
      return { id }
    }
    assert.deepEqual(await known.find(9, finder), { id: 9 })
    assert.equal(await known.find(10, finder), null)
    assert.deepEqual(found, [9])
  })
})
