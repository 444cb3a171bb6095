/** A live status line on a terminal: requests, req/s, errors, elapsed. Silent elsewhere. */
import type { Sample } from './recorder.js'
import { fmtInt } from './report-text.js'

/** A client process sends a second's sample as the next one begins. */
const SAMPLE_LAG_MS = 150

export class Progress {
  readonly #out: NodeJS.WriteStream
  readonly #label: string
  readonly #durationS: number
  readonly #live: boolean
  #responses = 0
  #errors = 0
  #shown = 0
  #started = Date.now()
  #timer: NodeJS.Timeout | null = null

  constructor(out: NodeJS.WriteStream, label: string, durationS: number, enabled: boolean) {
    this.#out = out
    this.#label = label
    this.#durationS = durationS
    this.#live = enabled && out.isTTY === true
  }

  /** Draws just after each second of the load, once the clients have sent that second. */
  start(startEpochMs: number): void {
    this.#started = startEpochMs
    if (!this.#live) return
    const first = Math.max(0, startEpochMs + 1000 + SAMPLE_LAG_MS - Date.now())
    this.#timer = setTimeout(() => {
      this.#draw()
      this.#timer = setInterval(() => this.#draw(), 1000)
    }, first)
  }

  sample(s: Sample): void {
    this.#responses += s.responses
    this.#errors += s.errors
  }

  #draw() {
    const elapsed = Math.max(0, Math.round((Date.now() - this.#started - SAMPLE_LAG_MS) / 1000))
    const rate = this.#responses - this.#shown
    this.#shown = this.#responses
    const line = `  ${this.#label}  ${elapsed}/${this.#durationS} s  requests ${fmtInt(this.#responses)}  req/s ${fmtInt(rate)}  errors ${fmtInt(this.#errors)}`
    this.#out.write(`\r${line}\x1b[K`)
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#live) this.#out.write('\r\x1b[K')
  }
}
