/**
 * The HTTP server under Fastify, and how it ends. Every phase of a connection is
 * bounded (HttpLimits): a client that sends headers and then part of a body, or
 * nothing, is answered 408 and closed instead of holding a descriptor forever;
 * connections beyond the cap are closed as soon as they are accepted, so the
 * descriptors the database and Redis need are never all taken by clients.
 */
import { readFileSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyServerFactory } from 'fastify'
import type { HttpLimits } from '../config.js'
import type { ErrorCode } from '../domain/errors.js'
import type { IssueFastLane } from './issue-fast-lane.js'

/**
 * node:http checks the request and headers timeouts this often (its default is
 * 30 s), so a stalled request is closed at most this long after its bound.
 */
export const TIMEOUT_CHECK_INTERVAL_MS = 1000

/**
 * Descriptors kept out of the automatic connection cap: the database pool, the
 * Redis clients, the worker, log and module files.
 */
const RESERVED_DESCRIPTORS = 128

/** While closing, connections that finish their last answer are closed this often. */
const REAP_INTERVAL_MS = 100

/** Request bodies are small JSON objects; anything bigger is refused unread. */
export const BODY_LIMIT_BYTES = 16 * 1024

/**
 * The API's one shutdown flag, set once the app's close() has begun: readiness
 * says so, and every request is refused (the issue routes by the issue pipeline).
 */
export class ShutdownFlag {
  #closing = false
  /** true once the app has begun to close */
  readonly closing = (): boolean => this.#closing
  set(): void {
    this.#closing = true
  }
}

/** The soft limit on open descriptors (Linux), or null where it cannot be read. */
export function descriptorLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** MAX_CONNECTIONS, or else what the descriptor limit leaves after the reserve. */
export function connectionCap(
  limits: Pick<HttpLimits, 'maxConnections'>,
  descriptors = descriptorLimit(),
): number | null {
  if (limits.maxConnections !== null) return limits.maxConnections
  if (descriptors === null) return null
  return Math.max(descriptors - RESERVED_DESCRIPTORS, Math.floor(descriptors / 2))
}

/**
 * Each connection's latest answer, so that `clientError` knows whether one is
 * being written on it. Set as each request arrives, never cleared: an answer that
 * has finished says so itself (`writableFinished`), and a closed connection's
 * entry goes with it. An idle kept-alive connection so holds its last request
 * and answer until its next request or its close (`keepAliveTimeoutMs`), which
 * costs less than a listener on every answer.
 */
const answers = new WeakMap<Socket, ServerResponse>()

/** A node:http server with the limits, whose requests pass the fast lane first. */
export function serverFactory(
  lane: Pick<IssueFastLane, 'handler'>,
  limits: HttpLimits,
): FastifyServerFactory {
  return (fastify) => {
    const handle = lane.handler(fastify)
    const server = createServer(
      {
        requestTimeout: limits.requestTimeoutMs,
        headersTimeout: limits.headersTimeoutMs,
        connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
      },
      (req, res) => {
        answers.set(req.socket, res)
        handle(req, res)
      },
    )
    server.keepAliveTimeout = limits.keepAliveTimeoutMs
    const cap = connectionCap(limits)
    if (cap !== null) server.maxConnections = cap
    return server
  }
}

function rawAnswer(status: number, reason: string, code: ErrorCode, message: string): string {
  const body = JSON.stringify({ code, message })
  return (
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

const TIMED_OUT = rawAnswer(
  408,
  'Request Timeout',
  'REQUEST_TIMEOUT',
  'The request did not arrive in time.',
)
const clientErrorAnswers: Record<string, string> = {
  ERR_HTTP_REQUEST_TIMEOUT: TIMED_OUT,
  HPE_HEADER_OVERFLOW: rawAnswer(
    431,
    'Request Header Fields Too Large',
    'HEADERS_TOO_LARGE',
    'The request headers are too large.',
  ),
}
const UNREADABLE = rawAnswer(
  400,
  'Bad Request',
  'VALIDATION_FAILED',
  'The request is not valid HTTP.',
)

/**
 * Fastify's `clientErrorHandler`: a request node:http could not read, or that did
 * not arrive in time, is answered in the service's error shape — unless an answer
 * has begun on that connection — and its connection closed.
 */
export function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  // An answer begun and not finished on this connection: bytes written now would
  // land inside it. The latest answer not yet given the connection is queued
  // behind one (pipelined requests), which may have begun.
  const answer = answers.get(socket)
  const answering =
    answer !== undefined &&
    !answer.writableFinished &&
    (answer.headersSent || answer.socket !== socket)
  if (socket.writable && !answering) {
    socket.write(clientErrorAnswers[err.code ?? ''] ?? UNREADABLE)
  }
  socket.destroy(err)
}

/**
 * Stops accepting, lets requests in flight finish (their connections are closed
 * once answered), and after `graceMs` closes every connection still open: idle,
 * stalled or slow. Resolves once the server is closed.
 */
export async function closeGracefully(app: FastifyInstance, graceMs: number): Promise<void> {
  const server: Server = app.server
  const reap = setInterval(() => server.closeIdleConnections(), REAP_INTERVAL_MS)
  const force = setTimeout(() => server.closeAllConnections(), graceMs)
  try {
    await app.close()
  } finally {
    clearInterval(reap)
    clearTimeout(force)
  }
}
