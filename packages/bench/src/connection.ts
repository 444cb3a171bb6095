/**
 * One keep-alive HTTP/1.1 connection with at most one request in flight, over a
 * bare socket. Opened lazily, reopened after any failure; the owner decides what a
 * failure costs (a retry, a timeout count) and when to send the next request.
 */
import { connect, type Socket } from 'node:net'
import { CHUNKED, chunkedEnd, parseHead } from './http1.js'
import { OUTCOME_PREFIX_BYTES } from './outcomes.js'

export interface ConnectionEvents {
  /** A complete answer; `prefix` is the start of its body (utf-8). */
  response(conn: Connection, status: number, prefix: string): void
  /** The request in flight got no answer: refused, reset, closed or garbled. */
  failed(conn: Connection, error: Error): void
}

export interface Target {
  host: string
  port: number
}

export class Connection {
  readonly #target: Target
  readonly #events: ConnectionEvents
  #socket: Socket | null = null
  #buf: Buffer | null = null
  #error: Error | null = null
  /** a request is in flight */
  busy = false
  /** when the request in flight counts from (performance.now() ms) */
  startedAt = 0
  /** when it is given up as a timeout (performance.now() ms) */
  deadline = 0
  /**
   * The request in flight is the first on a new socket: its latency includes the
   * connect and the wait in the server's accept queue.
   */
  fresh = false
  /** the user the request in flight speaks for */
  userId = 0

  constructor(target: Target, events: ConnectionEvents) {
    this.#target = target
    this.#events = events
  }

  /** Writes a request. The socket buffers it until connected, so connect time counts. */
  send(request: string): void {
    this.fresh = this.#socket === null
    const socket = this.#socket ?? this.#open()
    this.busy = true
    socket.write(request, 'latin1')
  }

  /** Gives up the request in flight (a timeout): the socket is dropped, not reused. */
  abort(): void {
    this.busy = false
    this.#drop()
  }

  close(): void {
    this.busy = false
    this.#drop()
  }

  #open(): Socket {
    const socket = connect(this.#target.port, this.#target.host)
    socket.setNoDelay(true)
    this.#socket = socket
    this.#error = null
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket === socket) this.#onData(chunk)
    })
    socket.on('error', (err) => {
      if (this.#socket === socket) this.#error = err
    })
    socket.on('close', () => {
      if (this.#socket !== socket) return
      this.#socket = null
      this.#buf = null
      if (this.busy) {
        this.busy = false
        this.#events.failed(this, this.#error ?? new Error('connection closed by the server'))
      }
    })
    return socket
  }

  #drop() {
    const socket = this.#socket
    this.#socket = null
    this.#buf = null
    socket?.destroy()
  }

  #onData(chunk: Buffer) {
    let buf = this.#buf ? Buffer.concat([this.#buf, chunk]) : chunk
    for (;;) {
      let head: ReturnType<typeof parseHead>
      let end: number
      let prefixStart: number
      let prefixEnd: number
      try {
        head = parseHead(buf, 0)
        if (!head) break
        if (head.contentLength === CHUNKED) {
          const chunked = chunkedEnd(buf, head.bodyStart)
          if (!chunked) break
          end = chunked.end
          prefixStart = chunked.dataStart
          prefixEnd = chunked.dataEnd
        } else {
          end = head.bodyStart + head.contentLength
          if (buf.length < end) break
          prefixStart = head.bodyStart
          prefixEnd = end
        }
      } catch (err) {
        this.#fail(err instanceof Error ? err : new Error(String(err)))
        return
      }
      const prefix = buf.toString(
        'utf8',
        prefixStart,
        Math.min(prefixEnd, prefixStart + OUTCOME_PREFIX_BYTES),
      )
      buf = buf.subarray(end)
      this.#buf = buf.length > 0 ? buf : null
      if (!this.busy) {
        // An answer to nothing: the server is confused; so is this connection.
        this.#fail(new Error('unsolicited response'))
        return
      }
      this.busy = false
      if (head.close) this.#drop()
      this.#events.response(this, head.status, prefix)
      if (buf.length === 0 || !this.#buf) return
    }
    this.#buf = buf.length > 0 ? buf : null
  }

  #fail(err: Error) {
    const wasBusy = this.busy
    this.busy = false
    this.#drop()
    if (wasBusy) this.#events.failed(this, err)
  }
}
