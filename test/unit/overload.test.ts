import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Overload } from '../../src/http/overload.js'

describe('Overload', () => {
  it('refuses a request that waited beyond the bound, and only then', () => {
    const o = new Overload(300)
    assert.equal(o.overdue(299), false)
    assert.equal(o.overdue(301), true)
    assert.equal(o.behind(), false)
  })

  it('sheds nothing with a bound of 0', () => {
    const o = new Overload(0)
    assert.equal(o.overdue(1e9), false)
    assert.equal(o.behind(), false)
  })
})
