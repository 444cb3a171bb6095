import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { describe, it } from 'node:test'
import { GateClock, type TimeSource } from '../../src/gate/gate-clock.js'

/** This process's wall clock to the microsecond (Date.now() has whole ms). */
const wall = () => performance.timeOrigin + performance.now()

/** A gate node whose clock is this process's shifted by `shift()` ms, as Redis answers TIME. */
const node = (shift: () => number): TimeSource => ({
  async time() {
    const ms = wall() + shift()
    return [String(Math.floor(ms / 1000)), String(Math.floor((ms % 1000) * 1000))]
  },
})

describe('GateClock', () => {
  it('knows nothing before a node answers: no time, and this process clock', () => {
    const clock = new GateClock({ nodes: () => [], boundMs: 500 })
    assert.equal(clock.time(), null)
    assert.equal(clock.offsetMs, null)
    assert.ok(Math.abs(clock.now() - Date.now()) <= 1)
  })

  it("measures the offset, and brackets the gate's clock within the measured error", async () => {
    const clock = new GateClock({
      nodes: () => [{ id: 'a', source: node(() => 3000) }],
      boundMs: 500,
    })
    await clock.probe()
    const offset = clock.offsetMs as number
    assert.ok(Math.abs(offset - 3000) <= 5, `offset ${offset}`)
    // The gate's true time when time() ran lies between these two readings, however
    // long a busy machine holds the process between them.
    const before = wall() + 3000
    const time = clock.time()
    const after = wall() + 3000
    assert.ok(time)
    // 0.1 ms: the reply's whole microseconds
    assert.ok(
      time.earliest - 0.1 <= after && before <= time.latest + 0.1,
      JSON.stringify({ before, ...time, after }),
    )
    assert.ok(time.latest - time.earliest < 50)
  })

  it('spans every node of a Cluster', async () => {
    const clock = new GateClock({
      nodes: () => [
        { id: 'a', source: node(() => -200) },
        { id: 'b', source: node(() => 200) },
      ],
      boundMs: 500,
    })
    await clock.probe()
    const time = clock.time()
    assert.ok(time)
    const now = wall()
    assert.ok(time.earliest <= now - 199 && time.latest >= now + 199, JSON.stringify(time))
    assert.ok(Math.abs(time.now - now) <= 5)
  })

  it('says when the offset crosses the bound, and when it comes back', async () => {
    let shift = 100
    const said: boolean[] = []
    const offsets: number[] = []
    const clock = new GateClock({
      nodes: () => [{ id: 'a', source: node(() => shift) }],
      boundMs: 500,
      onOffset: (ms) => offsets.push(ms),
      onSkew: (skewed) => said.push(skewed),
    })
    await clock.probe()
    assert.equal(clock.skewed, false)
    // The node's clock jumps: its new answers come with the same error, the newest is kept.
    shift = -900
    await clock.probe()
    await clock.probe()
    assert.equal(clock.skewed, true)
    shift = 0
    await clock.probe()
    assert.equal(clock.skewed, false)
    assert.deepEqual(said, [true, false], 'once each way')
    assert.equal(offsets.length, 4)
  })

  it('keeps its last answers when a node fails, and reports the failure', async () => {
    let fail = false
    const errors: unknown[] = []
    const source: TimeSource = {
      time: () => (fail ? Promise.reject(new Error('down')) : node(() => 0).time()),
    }
    const clock = new GateClock({
      nodes: () => [{ id: 'a', source }],
      boundMs: 500,
      onError: (err) => errors.push(err),
    })
    await clock.probe()
    fail = true
    await clock.probe()
    assert.equal(errors.length, 1)
    assert.ok(clock.time())
  })
})
