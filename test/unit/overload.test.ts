import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  ADMISSION_INTERVAL_MS,
  Admission,
  DECREASE,
  FLOOR_SHARE,
  MIN_RATE,
} from '../../src/http/admission.js'
import { Overload } from '../../src/http/overload.js'

describe('Overload', () => {
  it('refuses a request that waited beyond the bound, and only then', () => {
    const o = new Overload(300)
    assert.equal(o.overdue(299), false)
    assert.equal(o.overdue(301), true)
    assert.equal(o.admit(), true)
  })

  it('sheds nothing with a bound of 0', () => {
    const o = new Overload(0)
    assert.equal(o.overdue(1e9), false)
    assert.equal(o.admit(), true)
  })
})

/**
 * Drives an Admission with a clock of its own: `rate` requests a second offered
 * evenly over `ms`, the loop `delayMs` late at every 20 ms tick. Returns the
 * requests admitted and refused.
 */
function drive(a: Admission, clock: { t: number }, ms: number, rate: number, delayMs: number) {
  let admitted = 0
  let refused = 0
  const gap = 1000 / rate
  const end = clock.t + ms
  let nextTick = Math.ceil(clock.t / 20) * 20
  for (let t = clock.t; t < end; t += gap) {
    while (nextTick <= t) {
      a.sample(delayMs, nextTick)
      nextTick += 20
    }
    if (a.admit(t)) admitted++
    else refused++
  }
  for (; nextTick <= end; nextTick += 20) a.sample(delayMs, nextTick)
  clock.t = end
  return { admitted, refused }
}

describe('Admission (AIMD)', () => {
  it('limits nothing while the loop stays on time', () => {
    const clock = { t: 0 }
    const a = new Admission(100, 0)
    const r = drive(a, clock, 2000, 5000, 10)
    assert.equal(r.refused, 0)
    assert.equal(a.limit, Number.POSITIVE_INFINITY)
  })

  it('cuts the rate admitted multiplicatively while the loop is behind, never to zero', () => {
    const clock = { t: 0 }
    const a = new Admission(100, 0)
    drive(a, clock, 1000, 10_000, 10) // best rate seen: about 10,000/s
    drive(a, clock, ADMISSION_INTERVAL_MS, 10_000, 500)
    const first = a.limit
    assert.ok(Math.abs(first - 10_000 * DECREASE) < 20, String(first))
    // Behind for long: the limit falls to its floor, and stays there.
    const r = drive(a, clock, 3000, 10_000, 500)
    assert.ok(Math.abs(a.limit - 10_000 * FLOOR_SHARE) < 10, String(a.limit))
    assert.ok(r.admitted > 0 && r.refused > 0, JSON.stringify(r))
    // Partial: the floor's worth still goes through.
    assert.ok(r.admitted >= 3 * 10_000 * FLOOR_SHARE * 0.9, JSON.stringify(r))
  })

  it('rises additively once the loop is on time again, then lets everything through', () => {
    const clock = { t: 0 }
    const a = new Admission(100, 0)
    drive(a, clock, 1000, 10_000, 10)
    drive(a, clock, 2000, 10_000, 500)
    const low = a.limit
    drive(a, clock, ADMISSION_INTERVAL_MS, 10_000, 10)
    const step = a.limit - low
    assert.ok(step > 0, `${low} -> ${a.limit}`)
    drive(a, clock, ADMISSION_INTERVAL_MS, 10_000, 10)
    assert.ok(Math.abs(a.limit - low - 2 * step) < 1, `${low} + 2 × ${step} vs ${a.limit}`)
    // Back at the best rate, turning nobody away: the limit is lifted.
    drive(a, clock, 5000, 10_000, 10)
    assert.equal(a.limit, Number.POSITIVE_INFINITY)
    assert.equal(drive(a, clock, 500, 10_000, 10).refused, 0)
  })

  it('settles where the loop keeps up: the rate admitted tracks what the process sustains', () => {
    // A process that sustains 4,000 decisions a second: its loop is late when
    // more are admitted.
    const clock = { t: 0 }
    const a = new Admission(100, 0)
    let admittedRate = 8000
    let totalAdmitted = 0
    let totalRefused = 0
    for (let i = 0; i < 100; i++) {
      const delay = admittedRate > 4000 ? 500 : 10
      const r = drive(a, clock, ADMISSION_INTERVAL_MS, 8000, delay)
      admittedRate = (r.admitted * 1000) / ADMISSION_INTERVAL_MS
      if (i >= 50) {
        totalAdmitted += r.admitted
        totalRefused += r.refused
      }
    }
    const mean = (totalAdmitted * 1000) / (50 * ADMISSION_INTERVAL_MS)
    assert.ok(mean > 4000 * 0.6 && mean < 4000 * 1.1, `admitted ${mean}/s`)
    assert.ok(totalRefused > 0)
  })

  it('is limited from the very first interval behind, down to MIN_RATE at least', () => {
    const clock = { t: 0 }
    const a = new Admission(100, 0)
    drive(a, clock, ADMISSION_INTERVAL_MS, 10, 1000)
    assert.equal(a.limit, MIN_RATE)
    const r = drive(a, clock, 1000, 1000, 1000)
    assert.ok(r.admitted >= MIN_RATE * 0.9 && r.refused > 0, JSON.stringify(r))
  })
})
