/**
 * What the server the bench started logged at warn or above over its whole life
 * (start, warm-up, load, drain, stop): a worker backing off or a failed pass is
 * then in the report beside the figures it explains, not lost with the child's
 * output. The server logs pino JSON lines on stdout; Node's own warnings come on
 * stderr as `(node:<pid>) …`. Anything else (the start banner) is not counted.
 */

export interface LoggedMessage {
  level: 'warn' | 'error'
  message: string
  count: number
}

export interface ServerLogSummary {
  warnings: number
  errors: number
  /** the most frequent messages, most frequent first */
  messages: LoggedMessage[]
}

const WARN = 40
const ERROR = 50
/** distinct messages kept (a storm of one failure is one of them) */
const MAX_DISTINCT = 50
const MAX_MESSAGE = 300
/** a line longer than this is not a log line the bench can use; dropped unread */
const MAX_LINE = 64 * 1024
const NODE_WARNING = /^\(node:\d+\) /

export class ServerLog {
  #warnings = 0
  #errors = 0
  readonly #messages = new Map<string, LoggedMessage>()

  /** A line splitter for one output stream: feed it the stream's chunks. */
  stream(): (chunk: Buffer | string) => void {
    let pending = ''
    return (chunk) => {
      const text = pending + chunk.toString()
      const lines = text.split('\n')
      pending = lines.pop() ?? ''
      if (pending.length > MAX_LINE) pending = ''
      for (const line of lines) this.line(line)
    }
  }

  /** One complete line of output. */
  line(raw: string): void {
    const line = raw.trim()
    if (line.startsWith('{')) this.#json(line)
    else if (NODE_WARNING.test(line)) this.#count('warn', line.replace(NODE_WARNING, ''))
  }

  summary(): ServerLogSummary {
    const messages = [...this.#messages.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, 5)
      .map((m) => ({ ...m }))
    return { warnings: this.#warnings, errors: this.#errors, messages }
  }

  #json(line: string) {
    let entry: unknown
    try {
      entry = JSON.parse(line)
    } catch {
      return
    }
    if (typeof entry !== 'object' || entry === null) return
    const { level, msg, err } = entry as { level?: unknown; msg?: unknown; err?: unknown }
    if (typeof level !== 'number' || level < WARN) return
    const cause =
      typeof err === 'object' &&
      err !== null &&
      typeof (err as { message?: unknown }).message === 'string'
        ? `: ${(err as { message: string }).message}`
        : ''
    this.#count(
      level >= ERROR ? 'error' : 'warn',
      `${typeof msg === 'string' ? msg : '(no message)'}${cause}`,
    )
  }

  #count(level: LoggedMessage['level'], text: string) {
    if (level === 'error') this.#errors++
    else this.#warnings++
    const message = text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text
    const key = `${level} ${message}`
    const seen = this.#messages.get(key)
    if (seen) seen.count++
    else if (this.#messages.size < MAX_DISTINCT)
      this.#messages.set(key, { level, message, count: 1 })
  }
}
