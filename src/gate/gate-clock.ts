/**
 * The gate's clock as this process sees it. In Redis mode every issue window is
 * judged by Redis's own clock (TIME inside issue.lua, on the coupon's node), not
 * by the API process's, so one API process with a wrong clock cannot issue
 * outside the window. This process still needs to know that clock: the local
 * coupon cache refuses a request that is surely outside the window without asking
 * Redis, and the event page's countdown follows the clock that judges.
 *
 * Each gate node (the one Redis, or every master of a Cluster) is asked for its
 * TIME once every PROBE_MS. A reply that came back `rtt` ms after the question
 * was sent was read within rtt/2 of the midpoint, so the node's clock is known
 * within rtt/2 at that moment. From there it is carried forward on the monotonic
 * clock (performance.now), not on the wall clock: a step of the wall clock
 * (an NTP correction, a hand-set date) does not move the estimate, and the
 * monotonic clock's drift (bounded by DRIFT) only widens its error. The best
 * sample per node (smallest error once aged) is kept, unless a new one
 * contradicts it (the node's own clock was set).
 *
 * The offset (the gate's clock minus this process's wall clock) is a gauge; past
 * the bound this process says so in the log (once when it crosses the bound,
 * again every REMIND_MS while it stays past it, once when it comes back) and on
 * the dashboard. It keeps serving either way: the gate, not this clock, decides.
 */
import { performance } from 'node:perf_hooks'
import { Cluster } from 'ioredis'
import type { Logger } from 'pino'
import type { Metrics } from '../ops/metrics.js'
import type { RedisClient } from '../redis/connection.js'

/** How often each gate node is asked for its TIME. */
export const PROBE_MS = 1000
/** A bound on the monotonic clock's drift: 100 ppm (a crystal is within ~50). */
const DRIFT = 1e-4
/** How often a skew that persists is logged again. */
const REMIND_MS = 60_000

/** A gate node that answers TIME: `[seconds, microseconds]` as Redis sends them. */
export interface TimeSource {
  time(): Promise<(string | number)[]>
}

interface Sample {
  /** the node's clock (epoch ms) at `at` */
  gateMs: number
  /** performance.now() at the midpoint of the question and the answer */
  at: number
  /** half the round trip, ms: the node's clock was within this of gateMs at `at` */
  error: number
}

/** Where the gate's clock is now, as far as this process can know. */
export interface GateTime {
  /** the gate's clock now, epoch ms (a Cluster: the middle of its masters') */
  now: number
  /** no gate node's clock can be earlier than this (epoch ms) */
  earliest: number
  /** no gate node's clock can be later than this (epoch ms) */
  latest: number
}

export interface GateClockOptions {
  /** the gate's nodes, read before every probe (a Cluster's masters change) */
  nodes: () => { id: string; source: TimeSource }[]
  /** past this many ms of offset, the process is skewed */
  boundMs: number
  /** each probe's offset (gate minus wall clock), ms */
  onOffset?: (offsetMs: number) => void
  /** the offset crossed the bound (skewed true), or came back within it */
  onSkew?: (skewed: boolean, offsetMs: number) => void
  /** a probe failed (Redis unreachable): readiness reports that already */
  onError?: (err: unknown) => void
}

export class GateClock {
  readonly #o: GateClockOptions
  readonly #samples = new Map<string, Sample>()
  #timer: NodeJS.Timeout | null = null
  #skewed = false
  #warnedAt = 0
  #offsetMs: number | null = null
  #bases: { low: number; high: number; mid: number } | null = null

  constructor(options: GateClockOptions) {
    this.#o = options
  }

  /** Probes once (awaited: the first answers are known before serving), then every PROBE_MS. */
  async start(): Promise<void> {
    await this.probe()
    if (this.#timer) return
    this.#timer = setInterval(() => {
      this.probe().catch(() => {})
    }, PROBE_MS).unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }

  /** Asks every gate node for its TIME, keeps each best sample, and checks the offset. */
  async probe(): Promise<void> {
    const nodes = this.#o.nodes()
    const ids = new Set(nodes.map((n) => n.id))
    for (const id of this.#samples.keys()) if (!ids.has(id)) this.#samples.delete(id)
    this.#rebase()
    await Promise.all(
      nodes.map(async ({ id, source }) => {
        const sent = performance.now()
        let reply: (string | number)[]
        try {
          reply = await source.time()
        } catch (err) {
          this.#o.onError?.(err)
          return
        }
        const answered = performance.now()
        // To the microsecond: the script compares floor(ms) with whole ms, which
        // is the same as comparing the exact instant.
        const gateMs = Number(reply[0]) * 1000 + Number(reply[1]) / 1000
        if (!Number.isFinite(gateMs)) return
        this.#keep(id, { gateMs, at: (sent + answered) / 2, error: (answered - sent) / 2 })
      }),
    )
    this.#check()
  }

  /**
   * The new sample replaces the kept one when it is as precise, or when the two
   * disagree (the node's clock was set: the kept one is wrong now).
   */
  #keep(id: string, sample: Sample) {
    const kept = this.#samples.get(id)
    const keptError = kept ? errorOf(kept, sample.at) : 0
    if (
      !kept ||
      sample.error <= keptError ||
      Math.abs(kept.gateMs + (sample.at - kept.at) - sample.gateMs) > keptError + sample.error
    ) {
      this.#samples.set(id, sample)
      this.#rebase()
    }
  }

  #check() {
    const time = this.time()
    if (!time) return
    const offsetMs = time.now - Date.now()
    this.#offsetMs = offsetMs
    this.#o.onOffset?.(offsetMs)
    const skewed = Math.abs(offsetMs) > this.#o.boundMs
    const now = performance.now()
    if (skewed && (!this.#skewed || now - this.#warnedAt >= REMIND_MS)) {
      this.#warnedAt = now
      this.#o.onSkew?.(true, offsetMs)
    } else if (!skewed && this.#skewed) {
      this.#o.onSkew?.(false, offsetMs)
    }
    this.#skewed = skewed
  }

  /**
   * The gate's clock now; null until a gate node has answered. O(1): read by
   * the local cache on every issue request.
   */
  time(): GateTime | null {
    const b = this.#bases
    if (!b) return null
    const at = performance.now()
    return {
      now: Math.round(b.mid + at),
      earliest: b.low + at * (1 - DRIFT),
      latest: b.high + at * (1 + DRIFT),
    }
  }

  /**
   * The samples as lines in the monotonic clock `at` (for at after every
   * sample): a node's estimate is gateMs - s.at + at, its error s.error +
   * (at - s.at) * DRIFT; the earliest and latest over all nodes are then
   * low + at * (1 - DRIFT) and high + at * (1 + DRIFT).
   */
  #rebase() {
    if (this.#samples.size === 0) {
      this.#bases = null
      return
    }
    let low = Number.POSITIVE_INFINITY
    let high = Number.NEGATIVE_INFINITY
    let first = Number.POSITIVE_INFINITY
    let last = Number.NEGATIVE_INFINITY
    for (const s of this.#samples.values()) {
      const base = s.gateMs - s.at
      low = Math.min(low, base - s.error + s.at * DRIFT)
      high = Math.max(high, base + s.error - s.at * DRIFT)
      first = Math.min(first, base)
      last = Math.max(last, base)
    }
    this.#bases = { low, high, mid: (first + last) / 2 }
  }

  /** The gate's clock now (epoch ms), or this process's until a gate node has answered. */
  now(): number {
    return this.time()?.now ?? Date.now()
  }

  /** The gate's clock minus this process's, ms, at the last probe; null before any answer. */
  get offsetMs(): number | null {
    return this.#offsetMs
  }

  /** Whether the last probe found the offset past the bound. */
  get skewed(): boolean {
    return this.#skewed
  }
}

/** A sample's error at `at`: half its round trip, plus the drift since. */
function errorOf(s: Sample, at: number): number {
  return s.error + Math.abs(at - s.at) * DRIFT
}

/** The gate's nodes to ask for TIME: the one Redis, or every master of a Cluster (as it is now). */
export function gateNodesOf(client: RedisClient): { id: string; source: TimeSource }[] {
  if (!(client instanceof Cluster)) return [{ id: 'redis', source: client }]
  return client
    .nodes('master')
    .map((node) => ({ id: `${node.options.host}:${node.options.port}`, source: node }))
}

/** How the gate clock reports its offset and skew (beyond `boundMs`): logs and metrics. */
export function gateClockReports(
  logger: Logger,
  metrics: Metrics,
  boundMs: number,
): Pick<GateClockOptions, 'onOffset' | 'onSkew' | 'onError'> {
  return {
    onOffset: (offsetMs) => {
      metrics.clockOffset.set(offsetMs / 1000)
      metrics.clockSkewed.set(Math.abs(offsetMs) > boundMs ? 1 : 0)
    },
    onSkew: (skewed, offsetMs) => {
      const fields = { event: 'clock.skew', offsetMs, boundMs }
      if (skewed)
        logger.warn(
          fields,
          "this process's clock differs from Redis's by more than CLOCK_SKEW_BOUND_MS; Redis's clock judges every window, so issuing is unaffected: correct the host's time (NTP)",
        )
      else logger.info(fields, "this process's clock is back within CLOCK_SKEW_BOUND_MS of Redis's")
    },
    onError: (err) => logger.debug({ err }, "could not read Redis's clock"),
  }
}
