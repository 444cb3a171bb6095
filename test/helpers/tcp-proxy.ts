/**
 * A TCP proxy of the test's own between the service and a backing service, to
 * take that service away and bring it back: `cut()` closes the listener and
 * destroys every connection through it (the service sees resets and refused
 * connections, as when the database host goes away); `restore()` listens again on
 * the same port. With a delay, each direction's bytes arrive that much later, in
 * order (`packages/bench/src/delay-proxy.ts`): a network between the parts. In the test's
 * own process its timers share the event loop with the test; for a service in
 * the same process, `spawnDelayProxy` runs the proxy as a process of its own.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { type Delay, delayedPipe, delaysReady } from '../../packages/bench/src/delay-proxy.js'

export class TcpProxy {
  #target: { host: string; port: number }
  readonly #sockets = new Set<Socket>()
  readonly #delay: Delay | null
  #server: Server | null = null
  #port = 0

  /** `delayMs`: one-way delay, the same both ways or per direction (default none) */
  constructor(targetHost: string, targetPort: number, delayMs?: number | Delay) {
    this.#target = { host: targetHost, port: targetPort }
    this.#delay =
      delayMs === undefined
        ? null
        : typeof delayMs === 'number'
          ? { up: delayMs, down: delayMs }
          : delayMs
  }

  get port(): number {
    return this.#port
  }

  get connections(): number {
    return this.#sockets.size / 2
  }

  /** Listens on `port` (0: a free one) and forwards every connection to the target. */
  async start(port = this.#port): Promise<number> {
    if (this.#delay) await delaysReady(this.#delay)
    const server = createServer((client) => this.#pipe(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    this.#port = typeof address === 'object' && address ? address.port : port
    this.#server = server
    return this.#port
  }

  /** The backing service becomes unreachable: nothing listens, every link is reset. */
  async cut(): Promise<void> {
    const server = this.#server
    this.#server = null
    const closed = server ? new Promise((resolve) => server.close(resolve)) : null
    for (const s of this.#sockets) s.destroy()
    this.#sockets.clear()
    await closed
  }

  async restore(): Promise<void> {
    if (this.#server) return
    await this.start(this.#port)
  }

  /**
   * Sends every new connection to another backend (a replica promoted in the old
   * one's place); the links to the old one are reset.
   */
  async retarget(host: string, port: number): Promise<void> {
    await this.cut()
    this.#target = { host, port }
    await this.restore()
  }

  close(): Promise<void> {
    return this.cut()
  }

  #pipe(client: Socket) {
    if (this.#delay) {
      delayedPipe(client, this.#target, this.#delay, (s, closed) => {
        if (closed) this.#sockets.delete(s)
        else this.#sockets.add(s)
      })
      return
    }
    const upstream = createConnection(this.#target)
    for (const s of [client, upstream]) {
      this.#sockets.add(s)
      s.on('error', () => {})
      s.once('close', () => {
        this.#sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  }
}
