/**
 * A request node:http cannot read is answered 400 in the service's error shape,
 * unless an answer is being written on that connection: bytes written then would
 * land inside it.
 */
import assert from 'node:assert/strict'
import type { RequestListener, Server } from 'node:http'
import { type AddressInfo, createConnection } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { FastifyServerOptions } from 'fastify'
import { clientError, serverFactory } from '../../src/http/server.js'

const GET = 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n'
const GARBAGE = 'NOT HTTP AT ALL\r\n\r\n'

/** Sends `first`, then (once `ready` says so of what came back) `second`; answers every byte received. */
function exchange(
  port: number,
  first: string,
  second?: { ready: (received: string) => boolean; bytes: string },
): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = ''
    let sent = false
    const socket = createConnection(port, '127.0.0.1', () => socket.write(first))
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      received += chunk
      if (second && !sent && second.ready(received)) {
        sent = true
        socket.write(second.bytes)
      }
    })
    socket.on('error', reject)
    socket.on('close', () => resolve(received))
  })
}

describe('clientError', () => {
  let server: Server
  let port: number
  before(async () => {
    // /slow writes its headers and part of its body, and never finishes;
    // /pending is never answered; anything else is answered at once.
    const handler: RequestListener = (req, res) => {
      if (req.url === '/pending') return
      if (req.url === '/slow') {
        res.writeHead(200, { 'content-length': '10' })
        res.write('part')
        return
      }
      res.end('done')
    }
    const limits = {
      requestTimeoutMs: 10_000,
      headersTimeoutMs: 10_000,
      keepAliveTimeoutMs: 10_000,
      maxConnections: null,
      shutdownGraceMs: 0,
      queueTimeoutMs: 0,
    }
    server = serverFactory({ handler: (fastify) => fastify }, limits)(
      handler,
      {} as FastifyServerOptions,
    ) as Server
    server.on('clientError', clientError)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })

  it('answers an unreadable request 400 in the error shape and closes', async () => {
    const received = await exchange(port, GARBAGE)
    assert.match(received, /^HTTP\/1\.1 400 Bad Request\r\n/)
    assert.match(
      received,
      /\{"code":"VALIDATION_FAILED","message":"The request is not valid HTTP\."\}$/,
    )
  })

  it('writes nothing into an answer in progress on the connection', async () => {
    // The first request's answer has begun (its headers are written) when the
    // second, unreadable one arrives: the connection is closed without a 400.
    const received = await exchange(port, GET, {
      ready: (r) => r.endsWith('part'),
      bytes: GARBAGE,
    })
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n[\s\S]*part$/)
    assert.doesNotMatch(received, /400 Bad Request|VALIDATION_FAILED/)
  })

  it('writes nothing into an answer in progress behind which another request waits', async () => {
    // Pipelined: the second request has arrived (its answer not begun, queued
    // behind the first, which has) when the unreadable third does.
    const received = await exchange(port, `${GET}GET /pending HTTP/1.1\r\nHost: x\r\n\r\n`, {
      ready: (r) => r.endsWith('part'),
      bytes: GARBAGE,
    })
    assert.match(received, /^HTTP\/1\.1 200 OK\r\n[\s\S]*part$/)
    assert.doesNotMatch(received, /400 Bad Request|VALIDATION_FAILED/)
  })

  it('answers 400 after an answer on the connection has finished', async () => {
    const received = await exchange(port, 'GET /fast HTTP/1.1\r\nHost: x\r\n\r\n', {
      ready: (r) => r.endsWith('done'),
      bytes: GARBAGE,
    })
    assert.match(
      received,
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*done(HTTP\/1\.1 400 Bad Request\r\n[\s\S]*)$/,
    )
  })
})
