/**
 * What one client process records: every answer's latency (overall and for the
 * current second), outcome counts, transport failures, distinct users, and the
 * users that won. All times are performance.now() milliseconds; `t0` is the
 * start of the load on that clock.
 */
import { classify, type Expectation } from './outcomes.js'
import { encodeHistogram, type Histogram, newHistogram, recordMs } from './stats.js'
import { DistinctIds, type UserIdRange } from './user-ids.js'

/** One second of one client process, sent to the parent as it ends. */
export interface Sample {
  second: number
  responses: number
  errors: number
  /** encoded histogram of the latencies of that second */
  histogram: string
}

export interface WorkerResult {
  histogram: string
  /** latencies of first requests on new connections (connect + accept wait included) */
  freshHistogram: string
  counts: Record<string, number>
  timeouts: number
  connectionErrors: number
  /** requests written */
  sent: number
  /** answers received (any status) */
  answered: number
  distinctSent: number
  distinctAnswered: number
  /** distinct users answered with a win (the draw scenario: with 202, entrants) */
  distinctWon: number
  /** users answered with a win, up to `maxWinners` */
  winners: number[]
  winnersTruncated: boolean
  /** performance-clock ms of the last answer or failure, relative to t0 */
  lastEventMs: number
  /** CPU the client process used while loading, ms */
  cpuUserMs: number
  cpuSystemMs: number
  /** first few connection error messages, for the report */
  errorSamples: string[]
}

export interface RecorderOptions {
  t0: number
  /** the id range when ids repeat (random); null when every id is new */
  range: UserIdRange | null
  expect: Expectation
  maxWinners: number
  emit: (sample: Sample) => void
}

export class Recorder {
  readonly #o: RecorderOptions
  readonly #overall: Histogram = newHistogram()
  readonly #second: Histogram = newHistogram()
  /** first requests on new connections only */
  readonly #fresh: Histogram = newHistogram()
  readonly #counts = new Map<string, number>()
  readonly #distinctSent: DistinctIds | null
  readonly #distinctAnswered: DistinctIds | null
  /** made at the first win (most loads have few winners, or every id new) */
  #distinctWon: DistinctIds | null = null
  #wins = 0
  readonly #winners: number[] = []
  readonly #errorSamples: string[] = []
  readonly #cpuStart = process.cpuUsage()
  #winnersTruncated = false
  #current = 0
  #secondResponses = 0
  #secondErrors = 0
  #sent = 0
  #answered = 0
  #timeouts = 0
  #connectionErrors = 0
  #lastEventMs = 0

  constructor(options: RecorderOptions) {
    this.#o = options
    this.#distinctSent = options.range ? new DistinctIds(options.range) : null
    this.#distinctAnswered = options.range ? new DistinctIds(options.range) : null
  }

  sent(userId: number): void {
    this.#sent++
    this.#distinctSent?.add(userId)
  }

  response(
    now: number,
    latencyMs: number,
    status: number,
    prefix: string,
    userId: number,
    fresh = false,
  ): void {
    if (fresh) recordMs(this.#fresh, latencyMs)
    this.#roll(now)
    this.#lastEventMs = now - this.#o.t0
    this.#answered++
    this.#distinctAnswered?.add(userId)
    recordMs(this.#overall, latencyMs)
    recordMs(this.#second, latencyMs)
    this.#secondResponses++
    const key = classify(status, prefix)
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
    if (!this.#o.expect.ok(key)) this.#secondErrors++
    else if (key === this.#o.expect.win) {
      this.#wins++
      if (this.#o.range) {
        this.#distinctWon ??= new DistinctIds(this.#o.range)
        this.#distinctWon.add(userId)
      }
      if (this.#winners.length < this.#o.maxWinners) this.#winners.push(userId)
      else this.#winnersTruncated = true
    }
  }

  failure(now: number, kind: 'timeout' | 'connection', error?: Error): void {
    this.#roll(now)
    this.#lastEventMs = now - this.#o.t0
    this.#secondErrors++
    if (kind === 'timeout') this.#timeouts++
    else {
      this.#connectionErrors++
      if (error && this.#errorSamples.length < 5) {
        const code = 'code' in error ? ` (${String(error.code)})` : ''
        this.#errorSamples.push(`${error.message}${code}`)
      }
    }
  }

  /** Called by a timer too, so a second with no answers (a stall) is still sent. */
  tick(now: number): void {
    this.#roll(now)
  }

  #roll(now: number) {
    const second = Math.floor((now - this.#o.t0) / 1000)
    while (second > this.#current) this.#flush()
  }

  #flush() {
    this.#o.emit({
      second: this.#current,
      responses: this.#secondResponses,
      errors: this.#secondErrors,
      histogram: this.#secondResponses > 0 ? encodeHistogram(this.#second) : '',
    })
    this.#second.reset()
    this.#secondResponses = 0
    this.#secondErrors = 0
    this.#current++
  }

  finish(now: number): WorkerResult {
    this.#roll(now)
    if (this.#secondResponses > 0 || this.#secondErrors > 0) this.#flush()
    const cpu = process.cpuUsage(this.#cpuStart)
    return {
      histogram: encodeHistogram(this.#overall),
      freshHistogram: encodeHistogram(this.#fresh),
      counts: Object.fromEntries(this.#counts),
      timeouts: this.#timeouts,
      connectionErrors: this.#connectionErrors,
      sent: this.#sent,
      answered: this.#answered,
      distinctSent: this.#distinctSent?.count ?? this.#sent,
      distinctAnswered: this.#distinctAnswered?.count ?? this.#answered,
      distinctWon: this.#o.range ? (this.#distinctWon?.count ?? 0) : this.#wins,
      winners: this.#winners,
      winnersTruncated: this.#winnersTruncated,
      lastEventMs: this.#lastEventMs,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      errorSamples: this.#errorSamples,
    }
  }
}
