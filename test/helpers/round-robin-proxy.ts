/**
 * A round-robin TCP proxy of the test's own in front of several servers, as a
 * load balancer is in front of API containers: each new connection goes to the
 * next target in turn. A request sent on a connection of its own (`getFresh`)
 * therefore lands on each server in turn.
 */
import { request } from 'node:http'
import { createConnection, createServer, type Server, type Socket } from 'node:net'

export class RoundRobinProxy {
  readonly #targets: number[]
  readonly #sockets = new Set<Socket>()
  #server: Server | null = null
  #next = 0
  port = 0

  /** `targets`: ports on 127.0.0.1 */
  constructor(targets: number[]) {
    this.#targets = targets
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start(): Promise<string> {
    const server = createServer((client) => this.#pipe(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    this.port = typeof address === 'object' && address ? address.port : 0
    this.#server = server
    return this.url
  }

  async close(): Promise<void> {
    const server = this.#server
    this.#server = null
    for (const s of this.#sockets) s.destroy()
    if (server) await new Promise((resolve) => server.close(resolve))
  }

  #pipe(client: Socket) {
    const port = this.#targets[this.#next++ % this.#targets.length] as number
    const upstream = createConnection({ host: '127.0.0.1', port })
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

/** GET on a connection of its own (closed after): through the proxy, the next server. */
export function getFresh(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}
