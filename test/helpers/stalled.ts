/**
 * Connections that start a request and then send nothing more: headers with
 * `Content-Length: 100` and part of the body, or part of the headers. What the
 * server answers on each (if anything) and when it closes it are recorded.
 */
import net from 'node:net'

export interface StalledConnection {
  /** what the server wrote before closing ('' for none) */
  readonly received: string
  /** ms from opening to the server's close; null while open */
  readonly closedAfterMs: number | null
}

export interface Stalled {
  readonly connections: readonly StalledConnection[]
  /** how many the server has closed */
  closed(): number
  /** destroys those still open (test teardown) */
  destroy(): void
}

const ISSUE_HEAD = (couponId: number) =>
  `POST /v1/coupons/${couponId}/issues HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"userId":`
const ADMIN_HEAD = (token: string) =>
  `POST /v1/coupons HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"title":`
const PARTIAL_HEADERS = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '

export interface StalledOptions {
  couponId: number
  adminToken: string
}

/**
 * Opens `count` stalled connections to the server at `url`, in turn a partial
 * issue body (the fast lane's), a partial admin body (Fastify's) and partial
 * headers. Resolves once each has connected and sent its part, or was refused.
 */
export async function openStalled(
  url: string,
  count: number,
  options: StalledOptions,
): Promise<Stalled> {
  const { hostname, port } = new URL(url)
  const kinds = [ISSUE_HEAD(options.couponId), ADMIN_HEAD(options.adminToken), PARTIAL_HEADERS]
  const sockets: net.Socket[] = []
  const connections = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const c = { received: '', closedAfterMs: null as number | null }
      const started = performance.now()
      const socket = net.connect(Number(port), hostname)
      sockets.push(socket)
      socket.setEncoding('utf8')
      socket.on('data', (d: string) => {
        c.received += d
      })
      socket.on('error', () => {})
      return new Promise<StalledConnection>((resolve) => {
        socket.once('close', () => {
          c.closedAfterMs = performance.now() - started
          resolve(c)
        })
        socket.once('connect', () =>
          socket.write(kinds[i % kinds.length] as string, () => resolve(c)),
        )
      })
    }),
  )
  return {
    connections,
    closed: () => connections.filter((c) => c.closedAfterMs !== null).length,
    destroy: () => {
      for (const s of sockets) s.destroy()
    },
  }
}
