/**
 * The bench's arithmetic, kept pure so it can be tested: latency histograms
 * (microseconds, HdrHistogram), percentiles, throughput over wall time, merging
 * the results of several client processes, and outcome counts.
 */
import hdr, { type Histogram } from 'hdr-histogram-js'

export type { Histogram }

/** Highest latency a histogram tracks without resizing: one hour, in µs. */
const HIGHEST_US = 3_600_000_000

/** A latency histogram in microseconds with 3 significant digits (±0.1%). */
export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    // The pure-JS implementation: WASM histograms need an explicit destroy().
    useWebAssembly: false,
  })
}

/** Records a latency given in milliseconds (fractional). */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.min(HIGHEST_US, Math.round(ms * 1000))))
}

/** A histogram in a form that crosses a process boundary. */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h)
}

/** Adds encoded histograms (one per client process) into one. */
export function mergeHistograms(encoded: readonly string[], into = newHistogram()): Histogram {
  for (const e of encoded) {
    if (e === '') continue
    into.add(hdr.decodeFromCompressedBase64(e, 32, false))
  }
  return into
}

/** The figures the original README prints, in milliseconds. */
export interface Percentiles {
  count: number
  mean: number
  p50: number
  p70: number
  p90: number
  p95: number
  p99: number
  max: number
}

const round2 = (n: number) => Math.round(n * 100) / 100

export function percentiles(h: Histogram): Percentiles {
  if (h.totalCount === 0)
    return { count: 0, mean: 0, p50: 0, p70: 0, p90: 0, p95: 0, p99: 0, max: 0 }
  const ms = (p: number) => round2(h.getValueAtPercentile(p) / 1000)
  return {
    count: h.totalCount,
    mean: round2(h.mean / 1000),
    p50: ms(50),
    p70: ms(70),
    p90: ms(90),
    p95: ms(95),
    p99: ms(99),
    max: round2(h.maxValue / 1000),
  }
}

/**
 * Responses per second over the whole wall time of the run. Not the mean of
 * per-second samples: a client whose timers lag takes fewer, longer samples and
 * that mean drifts high; a count divided by a clock does not.
 */
export function throughput(responses: number, wallMs: number): number {
  if (wallMs <= 0) return 0
  return Math.round((responses * 1000 * 10) / wallMs) / 10
}

/** Counts by outcome key (`201`, `409 SOLD_OUT`, …): adds `from` into `into`. */
export function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>) {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n
  return into
}

/** Transport failures, kept apart from HTTP answers. */
export interface ErrorCounts {
  /** no complete answer within the timeout */
  timeouts: number
  /** refused, reset or closed connections (each failed attempt once) */
  connectionErrors: number
}

/** One second of the run, as the timeline of the report shows it. */
export interface SecondBucket {
  /** seconds since the start of the load */
  second: number
  responses: number
  errors: number
  latency: Percentiles
}

/**
 * Merges the per-second samples of several client processes: the same second's
 * histograms are added, counts summed, and missing seconds (a stall) become zeros.
 */
export function mergeTimeline(
  samples: readonly { second: number; responses: number; errors: number; histogram: string }[],
): SecondBucket[] {
  const bySecond = new Map<number, { responses: number; errors: number; histograms: string[] }>()
  let last = -1
  for (const s of samples) {
    let b = bySecond.get(s.second)
    if (!b) {
      b = { responses: 0, errors: 0, histograms: [] }
      bySecond.set(s.second, b)
    }
    b.responses += s.responses
    b.errors += s.errors
    b.histograms.push(s.histogram)
    if (s.second > last) last = s.second
  }
  const out: SecondBucket[] = []
  for (let second = 0; second <= last; second++) {
    const b = bySecond.get(second)
    out.push({
      second,
      responses: b?.responses ?? 0,
      errors: b?.errors ?? 0,
      latency: percentiles(mergeHistograms(b?.histograms ?? [])),
    })
  }
  return out
}
