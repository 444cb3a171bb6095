/**
 * When the draw runner asks for due draws: with none scheduled it only reads
 * the next drawAt now and then, never the due list; it sleeps until a drawAt
 * and asks from then on until none is due; a change notice makes it read the
 * next drawAt at once. The runner's sources are plain functions here (the draw
 * itself is the integration and crash tests').
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Db } from '../../src/db/database.js'
import type { StockGate } from '../../src/gate/stock-gate.js'
import { DrawRunner, localDrawLease } from '../../src/service/draw-runner.js'

interface Calls {
  next: number
  due: number
}

function runner(next: () => number | null, due: () => number[], resyncMs: number) {
  const calls: Calls = { next: 0, due: 0 }
  let listener: () => void = () => {}
  const r = new DrawRunner({
    db: {} as Db,
    gate: {} as StockGate,
    lease: localDrawLease(),
    entrants: async function* () {},
    commit: async () => {},
    next: async () => {
      calls.next++
      return next()
    },
    due: async () => {
      calls.due++
      return due()
    },
    subscribe: (l) => {
      listener = l
    },
    intervalMs: 20,
    resyncMs,
  })
  return { r, calls, notify: () => listener() }
}

describe('the draw runner', () => {
  it('with no draw scheduled, reads the next drawAt once a resync and never the due list', async () => {
    const { r, calls } = runner(
      () => null,
      () => [],
      100,
    )
    r.start()
    await sleep(450)
    await r.stop()
    assert.equal(calls.due, 0)
    assert.ok(calls.next >= 2 && calls.next <= 6, `${calls.next} reads in 450 ms`)
  })

  it('sleeps until a drawAt, then asks while a draw is due, then sleeps again', async () => {
    const at = Date.now() + 300
    let drawn = false
    const { r, calls } = runner(
      () => (drawn ? null : at),
      () => (!drawn && Date.now() >= at ? [1] : []),
      10_000,
    )
    // run() is the lease and the draw: here it only says the draw is done.
    r.run = async () => {
      drawn = true
      return true
    }
    r.start()
    await sleep(200)
    assert.equal(calls.due, 0, 'nothing asked before drawAt')
    assert.equal(calls.next, 1)
    await sleep(300)
    assert.ok(drawn, 'drawn at drawAt')
    const settled = { ...calls }
    await sleep(300)
    await r.stop()
    assert.deepEqual(calls, settled, 'nothing asked once none is due')
    assert.ok(calls.due >= 2 && calls.due <= 4, `${calls.due} due lists`)
  })

  it('keeps asking while a due draw is held elsewhere (a lease not yet expired)', async () => {
    const { r, calls } = runner(
      () => Date.now() - 1000,
      () => [1],
      10_000,
    )
    r.run = async () => false // another process holds the lease
    r.start()
    await sleep(250)
    await r.stop()
    assert.ok(calls.due >= 3, `${calls.due} due lists in 250 ms at 20 ms`)
  })

  it('reads the next drawAt again on a change notice', async () => {
    let at: number | null = null
    const { r, calls, notify } = runner(
      () => at,
      () => [],
      60_000,
    )
    r.start()
    await sleep(100)
    assert.equal(calls.next, 1)
    at = Date.now() + 50
    notify()
    await sleep(200)
    await r.stop()
    assert.ok(calls.next >= 2, 'read again')
    assert.ok(calls.due >= 1, 'and asked at the new drawAt')
  })
})
