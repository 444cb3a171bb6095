/**
 * The open loop's timetable. Requests are due at a fixed offered rate whatever
 * the server does: request g (0-based, over all client processes) is due at
 * `g × 1000 / rate` ms after the start, and client process `part` of `of` sends
 * every `of`-th one from g = part, so the processes interleave into one even
 * stream. Latency is measured from the due time, not from the moment a
 * connection was free to send it: a stalled server is charged for the queue it
 * causes (no coordinated omission).
 */
export class OpenLoopSchedule {
  readonly #intervalMs: number
  readonly #rate: number
  readonly #part: number
  readonly #of: number
  /** requests of this part within the duration */
  readonly total: number

  constructor(rate: number, durationMs: number, part = 0, of = 1) {
    if (!(rate > 0)) throw new RangeError('rate must be positive')
    this.#rate = rate
    this.#intervalMs = 1000 / rate
    this.#part = part
    this.#of = of
    // Overall requests g with g × interval < duration, then this part's share.
    const overall = Math.ceil((durationMs * rate) / 1000 - 1e-9)
    this.total = overall > part ? Math.floor((overall - 1 - part) / of) + 1 : 0
  }

  /** Due time of this part's k-th request, ms after the start. */
  at(k: number): number {
    return (k * this.#of + this.#part) * this.#intervalMs
  }

  /** How many of this part's requests are due `elapsedMs` after the start. */
  dueBy(elapsedMs: number): number {
    if (elapsedMs < 0) return 0
    const last = Math.floor((elapsedMs * this.#rate) / 1000 + 1e-9)
    if (last < this.#part) return 0
    return Math.min(this.total, Math.floor((last - this.#part) / this.#of) + 1)
  }
}
