/**
 * Overload: answer fast instead of late. Past capacity, requests wait in the
 * kernel's socket buffers and in Node before they reach the gate, and a decision
 * made seconds late is worth less to the client than a quick 503 it can retry.
 * With QUEUE_TIMEOUT_MS set, an issue request is refused 503 UNAVAILABLE (with
 * Retry-After), before the gate decides it, when
 * - admission turns it away: once the event loop runs more than half the bound
 *   behind, only so many requests a second are let through, a number that falls
 *   while the loop stays behind and rises again once it is on time (AIMD, see
 *   admission.ts) — checked as soon as the headers are read, so the refusal costs
 *   no body parsing, and never all requests: wins keep flowing;
 * - or the request itself has waited more than QUEUE_TIMEOUT_MS since it was
 *   read, when its gate call would be made.
 * Once the gate is asked, the request is answered with its outcome however late:
 * a decided win is always a 201. Only the issue routes are shed; reads, admin and
 * health answer as usual.
 *
 * The delay is how late a short timer fires. Not @fastify/under-pressure's: that
 * is a mean over its sample interval, so a stall inside an otherwise idle
 * interval is averaged away, and an interval with no sample at all counts as an
 * infinite delay (every request of the first interval after start was refused).
 */
import type { FastifyInstance } from 'fastify'
import { Admission } from './admission.js'

/** How often the event-loop delay is measured. */
const TICK_MS = 20

/** Why a request was refused: turned away by admission (the loop behind), or itself late. */
export type ShedReason = 'event_loop_lag' | 'queue_timeout'

export class Overload {
  readonly #boundMs: number
  readonly #onShed: (reason: ShedReason) => void
  readonly #admission: Admission

  /**
   * boundMs: QUEUE_TIMEOUT_MS; 0 sheds nothing. onShed hears every request a
   * check refuses (the callers answer each one 503).
   */
  constructor(boundMs: number, onShed: (reason: ShedReason) => void = () => {}) {
    this.#boundMs = boundMs
    this.#onShed = onShed
    this.#admission = new Admission(boundMs / 2, performance.now())
  }

  /** Whether an issue request just read may go on to be decided; false: refuse it 503. */
  admit(): boolean {
    if (this.#boundMs === 0 || this.#admission.admit(performance.now())) return true
    this.#onShed('event_loop_lag')
    return false
  }

  /** A request read `waitedMs` ago is too late to be decided now. */
  overdue(waitedMs: number): boolean {
    if (this.#boundMs === 0 || waitedMs <= this.#boundMs) return false
    this.#onShed('queue_timeout')
    return true
  }

  /**
   * Measures the event-loop delay while the app runs. The issue pipeline asks
   * admit() of each issue request (issue-pipeline.ts).
   */
  register(app: FastifyInstance): void {
    if (this.#boundMs === 0) return
    let timer: NodeJS.Timeout | null = null
    app.addHook('onReady', (done) => {
      let expected = performance.now() + TICK_MS
      timer = setInterval(() => {
        const now = performance.now()
        this.#admission.sample(Math.max(0, now - expected), now)
        expected = now + TICK_MS
      }, TICK_MS).unref()
      done()
    })
    app.addHook('onClose', (_app, done) => {
      if (timer) clearInterval(timer)
      done()
    })
  }
}
