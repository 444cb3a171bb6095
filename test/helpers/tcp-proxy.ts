/**
 * A TCP proxy of the test's own between the service and a backing service, to
 * take that service away and bring it back: `cut()` closes the listener and
 * destroys every connection through it (the service sees resets and refused
 * connections, as when the database host goes away); `restore()` listens again on
 * the same port.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net'

export class TcpProxy {
  readonly #target: { host: string; port: number }
  readonly #sockets = new Set<Socket>()
  #server: Server | null = null
  #port = 0

  constructor(targetHost: string, targetPort: number) {
    this.#target = { host: targetHost, port: targetPort }
  }

  get port(): number {
    return this.#port
  }

  get connections(): number {
    return this.#sockets.size / 2
  }

  /** Listens on `port` (0: a free one) and forwards every connection to the target. */
  async start(port = this.#port): Promise<number> {
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

  close(): Promise<void> {
    return this.cut()
  }

  #pipe(client: Socket) {
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
