/** A live status line on a terminal: requests, req/s, errors, elapsed. Silent elsewhere. */
import type { Sample } from './recorder.js'
import { fmtInt } from './report-text.js'

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

  start(startEpochMs = Date.now()): void {
    this.#started = startEpochMs
    if (!this.#live) return
    this.#timer = setInterval(() => this.#draw(), 1000)
  }

  sample(s: Sample): void {
    this.#responses += s.responses
    this.#errors += s.errors
  }

  #draw() {
    const elapsed = Math.max(0, Math.floor((Date.now() - this.#started) / 1000))
    const rate = this.#responses - this.#shown
    this.#shown = this.#responses
    const line = `  ${this.#label}  ${elapsed}/${this.#durationS} s  requests ${fmtInt(this.#responses)}  req/s ${fmtInt(rate)}  errors ${fmtInt(this.#errors)}`
    this.#out.write(`\r${line}\x1b[K`)
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    if (this.#live) this.#out.write('\r\x1b[K')
  }
}
