/**
 * Admission: how many issue requests a second the process lets through to be
 * decided once it is overloaded, the rest being refused 503 at once (before the
 * body is read). AIMD, as TCP's congestion window:
 * - every interval, the event loop's worst delay over it is compared with the
 *   target (half of QUEUE_TIMEOUT_MS, so that a request read now still has time
 *   left to be decided within the bound);
 * - over the target: the admitted rate is cut multiplicatively, from the rate
 *   actually admitted over the interval (not from a limit far above it);
 * - under it: the limit rises by a fixed step (a share of the best rate admitted
 *   over an interval so far), and is lifted altogether once it is at that best
 *   rate and turned nobody away over the interval.
 * Never all or nothing: the limit stays at or above a floor (a share of the best
 * rate seen), so wins keep flowing however far behind the loop is; and nothing is
 * limited until the loop first falls behind.
 *
 * Pure logic: the clock and the delay samples are given, so a test can drive it.
 */

/** How often the limit is adjusted. */
export const ADMISSION_INTERVAL_MS = 100
/** Over the target, the limit becomes this share of the rate admitted. */
export const DECREASE = 0.7
/** Under the target, the limit rises by this share of the best rate seen per interval. */
export const INCREASE_SHARE = 0.05
/** The limit never falls below this share of the best rate seen... */
export const FLOOR_SHARE = 0.1
/** ...nor below this many requests a second. */
export const MIN_RATE = 20
/** Tokens a full bucket holds: this many seconds of the limit (at least one request). */
const BURST_S = 0.05

export class Admission {
  readonly #targetMs: number
  /** requests a second; Infinity: not limiting */
  #limit = Number.POSITIVE_INFINITY
  #tokens = 0
  #refilledAt: number
  #intervalStart: number
  #worstDelayMs = 0
  #admitted = 0
  #refused = 0
  /** the highest rate admitted over an interval */
  #best = 0

  /** targetMs: the event-loop delay to stay under; now: the clock's current value, ms. */
  constructor(targetMs: number, now: number) {
    this.#targetMs = targetMs
    this.#refilledAt = now
    this.#intervalStart = now
  }

  /** The current limit, requests a second (Infinity: not limiting). */
  get limit(): number {
    return this.#limit
  }

  /** Whether a request arriving at `now` may be decided; false: refuse it 503. */
  admit(now: number): boolean {
    if (this.#limit === Number.POSITIVE_INFINITY) {
      this.#admitted++
      return true
    }
    const burst = Math.max(1, this.#limit * BURST_S)
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#limit)
    this.#refilledAt = now
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      this.#admitted++
      return true
    }
    this.#refused++
    return false
  }

  /** An event-loop delay measured at `now` (ms); adjusts the limit once an interval is over. */
  sample(delayMs: number, now: number): void {
    if (delayMs > this.#worstDelayMs) this.#worstDelayMs = delayMs
    const elapsed = now - this.#intervalStart
    if (elapsed < ADMISSION_INTERVAL_MS) return
    const rate = (this.#admitted * 1000) / elapsed
    if (rate > this.#best) this.#best = rate
    if (this.#worstDelayMs > this.#targetMs) {
      this.#limit = Math.max(this.#floor(), Math.min(this.#limit, rate) * DECREASE)
      this.#tokens = Math.min(this.#tokens, Math.max(1, this.#limit * BURST_S))
    } else if (this.#limit !== Number.POSITIVE_INFINITY) {
      if (this.#refused === 0 && this.#limit >= this.#best) this.#limit = Number.POSITIVE_INFINITY
      else this.#limit += Math.max(MIN_RATE, this.#best * INCREASE_SHARE)
    }
    this.#intervalStart = now
    this.#worstDelayMs = 0
    this.#admitted = 0
    this.#refused = 0
  }

  #floor(): number {
    return Math.max(MIN_RATE, this.#best * FLOOR_SHARE)
  }
}
