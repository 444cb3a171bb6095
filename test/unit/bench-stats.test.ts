import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { classify, expectationFor, tallyOutcomes } from '../../packages/bench/src/outcomes.js'
import { OpenLoopSchedule } from '../../packages/bench/src/schedule.js'
import {
  addCounts,
  encodeHistogram,
  mergeHistograms,
  mergeTimeline,
  newHistogram,
  percentiles,
  recordMs,
  throughput,
} from '../../packages/bench/src/stats.js'
import { DistinctIds, randomIds, sequentialIds } from '../../packages/bench/src/user-ids.js'

/** Within HdrHistogram's 3 significant digits. */
function near(actual: number, expected: number) {
  assert.ok(Math.abs(actual - expected) <= expected * 0.002 + 0.001, `${actual} ≉ ${expected}`)
}

describe('percentiles', () => {
  it('reads p50/p70/p90/p95/p99/max in ms from µs recordings', () => {
    const h = newHistogram()
    for (let ms = 1; ms <= 1000; ms++) recordMs(h, ms)
    const p = percentiles(h)
    assert.equal(p.count, 1000)
    near(p.p50, 500)
    near(p.p70, 700)
    near(p.p90, 900)
    near(p.p95, 950)
    near(p.p99, 990)
    near(p.max, 1000)
    near(p.mean, 500.5)
  })

  it('is all zeros for no samples', () => {
    assert.deepEqual(percentiles(newHistogram()), {
      count: 0,
      mean: 0,
      p50: 0,
      p70: 0,
      p90: 0,
      p95: 0,
      p99: 0,
      max: 0,
    })
  })

  it('keeps sub-millisecond latencies', () => {
    const h = newHistogram()
    recordMs(h, 0.25)
    near(percentiles(h).max, 0.25)
  })
})

describe('merging the histograms of several client processes', () => {
  it('gives the percentiles of all samples together', () => {
    const fast = newHistogram()
    const slow = newHistogram()
    for (let i = 0; i < 900; i++) recordMs(fast, 10)
    for (let i = 0; i < 100; i++) recordMs(slow, 2000)
    const merged = percentiles(mergeHistograms([encodeHistogram(fast), encodeHistogram(slow), '']))
    assert.equal(merged.count, 1000)
    near(merged.p50, 10)
    near(merged.p90, 10)
    near(merged.p95, 2000)
    near(merged.max, 2000)
  })

  it('lines seconds up and turns a silent second into zeros', () => {
    const one = newHistogram()
    recordMs(one, 5)
    const e = encodeHistogram(one)
    const timeline = mergeTimeline([
      { second: 0, responses: 1, errors: 0, histogram: e },
      { second: 0, responses: 1, errors: 1, histogram: e },
      { second: 2, responses: 1, errors: 0, histogram: e },
    ])
    assert.deepEqual(
      timeline.map((b) => [b.second, b.responses, b.errors, b.latency.count]),
      [
        [0, 2, 1, 2],
        [1, 0, 0, 0],
        [2, 1, 0, 1],
      ],
    )
  })
})

describe('throughput', () => {
  it('is responses over wall time, not a mean of per-second samples', () => {
    assert.equal(throughput(10_000, 2000), 5000)
    // 9,000 answers in a run that took 3.2 s of wall time: 2,812.5/s, whatever
    // the per-second samples said.
    assert.equal(throughput(9000, 3200), 2812.5)
    assert.equal(throughput(5, 0), 0)
  })

  it('sums outcome counts of several processes', () => {
    const total = addCounts({}, { '201': 3, '409 SOLD_OUT': 10 })
    addCounts(total, { '409 SOLD_OUT': 5, '503 UNAVAILABLE': 1 })
    assert.deepEqual(total, { '201': 3, '409 SOLD_OUT': 15, '503 UNAVAILABLE': 1 })
  })
})

describe('outcomes', () => {
  it('names an answer by status and the code at the start of its body', () => {
    assert.equal(classify(201, '{"couponId":1,"userId":"7","rank":3}'), '201')
    assert.equal(classify(409, '{"code":"SOLD_OUT","message":"All coupons have'), '409 SOLD_OUT')
    assert.equal(classify(409, '{ "code" : "ALREADY_ISSUED", "message"'), '409 ALREADY_ISSUED')
    assert.equal(classify(503, '{"code":"UNAVAILABLE","message":"x"}'), '503 UNAVAILABLE')
    assert.equal(classify(502, '<html>Bad gateway'), '502')
    assert.equal(classify(200, '{"isSuccess":true}'), '200 isSuccess')
    assert.equal(
      classify(200, '{"isSuccess":false,"comment":"쿠폰 발급 수량이 유효하지 않습니다."}'),
      '200 isSuccess=false SOLD_OUT',
    )
    assert.equal(
      classify(200, '{"isSuccess":false,"comment":"쿠폰 발급 기간이 유효하지 않습니다."}'),
      '200 isSuccess=false ISSUE_NOT_STARTED|ISSUE_ENDED',
    )
  })

  it('counts what each scenario expects, its failures and its wins', () => {
    const counts = {
      '201': 50,
      '409 SOLD_OUT': 900,
      '409 ALREADY_ISSUED': 40,
      '503 UNAVAILABLE': 2,
    }
    assert.deepEqual(tallyOutcomes(counts, expectationFor('seed')), {
      ok: 990,
      unexpected: 2,
      wins: 50,
    })
    assert.deepEqual(tallyOutcomes({ '201': 7, '409 SOLD_OUT': 1 }, expectationFor('win')), {
      ok: 7,
      unexpected: 1,
      wins: 7,
    })
    const compat = {
      '200 isSuccess': 5,
      '200 isSuccess=false SOLD_OUT': 9,
      '400 VALIDATION_FAILED': 1,
    }
    assert.deepEqual(tallyOutcomes(compat, expectationFor('compat')), {
      ok: 14,
      unexpected: 1,
      wins: 5,
    })
    // An entry is the draw scenario's answer; a DRAWING 503 is not expected.
    const draw = { '202': 800, '503 UNAVAILABLE': 3 }
    assert.deepEqual(tallyOutcomes(draw, expectationFor('draw')), {
      ok: 800,
      unexpected: 3,
      wins: 800,
    })
  })
})

describe('the open-loop schedule', () => {
  it('spreads a rate evenly over the duration', () => {
    const s = new OpenLoopSchedule(200, 2000)
    assert.equal(s.total, 400)
    assert.equal(s.at(0), 0)
    assert.equal(s.at(1), 5)
    assert.equal(s.dueBy(-1), 0)
    assert.equal(s.dueBy(0), 1)
    assert.equal(s.dueBy(4.9), 1)
    assert.equal(s.dueBy(5), 2)
    assert.equal(s.dueBy(1_000_000), 400)
  })

  it('interleaves several processes into one stream', () => {
    const parts = [0, 1, 2].map((p) => new OpenLoopSchedule(300, 1000, p, 3))
    assert.deepEqual(
      parts.map((s) => s.total),
      [100, 100, 100],
    )
    const times = parts.flatMap((s) => Array.from({ length: s.total }, (_, k) => s.at(k)))
    times.sort((a, b) => a - b)
    for (const [g, t] of times.entries()) near(t, (g * 1000) / 300)
    // 10 ms in: requests 0, 1, 2 and 3 (at 0, 3.3, 6.7, 10 ms) are due.
    assert.equal(
      parts.reduce((n, s) => n + s.dueBy(10), 0),
      4,
    )
  })

  it('charges a stall to every request due during it (no coordinated omission)', () => {
    // 100 req/s for 2 s; the server answers nothing for the first second, then
    // everything at once; one connection. Measured from each request's due time,
    // the stall shows as a queue draining from 1000 ms down to 0. Measured from
    // the send, as a closed-loop tool would, it would show one slow request.
    const s = new OpenLoopSchedule(100, 2000)
    const fromDue = newHistogram()
    const fromSend = newHistogram()
    let free = 0 // when the one connection can send again
    for (let k = 0; k < s.total; k++) {
      const due = s.at(k)
      const sent = Math.max(due, free)
      const done = sent < 1000 ? 1000 : sent + 0.5
      free = done
      recordMs(fromDue, done - due)
      recordMs(fromSend, done - sent)
    }
    const due = percentiles(fromDue)
    const send = percentiles(fromSend)
    assert.equal(due.count, 200)
    // Half the requests fell due in the stall and waited 1000…10 ms for it.
    near(due.max, 1000)
    assert.ok(due.p70 > 380 && due.p70 < 500, `p70 ${due.p70}`)
    assert.ok(due.mean > 240, `mean ${due.mean}`)
    // The same run measured from the send hides all but one of them.
    near(send.max, 1000)
    assert.ok(send.p99 < 1, `p99 from send ${send.p99}`)
  })
})

describe('distinct users', () => {
  it('counts each id once, in a bitset over the range', () => {
    const d = new DistinctIds({ min: 1, max: 10_000_000 })
    for (const id of [1, 2, 2, 10_000_000, 1, 9_999_999]) d.add(id)
    assert.equal(d.count, 4)
  })

  it('falls back to a set for a huge range', () => {
    const d = new DistinctIds({ min: 1, max: 2 ** 40 })
    for (const id of [5, 2 ** 39, 5]) d.add(id)
    assert.equal(d.count, 2)
  })

  it('gives each client process its own slice of the range', () => {
    const range = { min: 1, max: 10 }
    const seen = [0, 1, 2].map((part) => {
      const src = randomIds(range, part, 3)
      const ids = new Set<number>()
      for (let i = 0; i < 500; i++) ids.add(src.next())
      return [...ids].sort((a, b) => a - b)
    })
    assert.deepEqual(seen, [
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9, 10],
    ])
  })

  it('hands out new users without overlap between processes', () => {
    const a = sequentialIds(1, 0, 2)
    const b = sequentialIds(1, 1, 2)
    assert.deepEqual([a.next(), a.next(), b.next(), b.next()], [1, 3, 2, 4])
    assert.equal(a.unique, true)
  })
})
