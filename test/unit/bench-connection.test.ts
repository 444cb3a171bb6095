import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { Connection, type ConnectionEvents } from '../../packages/bench/src/connection.js'
import { requestPrefix, withBody } from '../../packages/bench/src/http1.js'
import { ConnectionPool } from '../../packages/bench/src/open-loop.js'
import { waitFor } from '../helpers/wait.js'

let server: Server
let port = 0
let served = 0

before(async () => {
  // Answers in every framing the client must handle, picked by the path.
  server = createServer((req, res) => {
    served++
    req.resume()
    req.on('end', () => {
      if (req.url === '/chunked') {
        res.writeHead(409, { 'content-type': 'application/json' })
        res.write('{"code":"SOLD')
        res.end('_OUT","message":"x"}')
      } else if (req.url === '/close') {
        res.writeHead(503, { connection: 'close', 'content-length': 2 })
        res.end('{}')
      } else if (req.url === '/hang') {
        // never answers
      } else {
        res.writeHead(201, { 'content-length': 13 })
        res.end('{"couponId":1')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})
after(() => {
  server.closeAllConnections()
  server.close()
})

function exchange(path: string, times: number) {
  const answers: [number, string][] = []
  const failures: Error[] = []
  return new Promise<{ answers: [number, string][]; failures: Error[] }>((resolve) => {
    const request = withBody(
      requestPrefix({ method: 'POST', path, host: `127.0.0.1:${port}` }),
      '{"userId":1}',
    )
    const events: ConnectionEvents = {
      response(c, status, prefix) {
        answers.push([status, prefix])
        if (answers.length < times) c.send(request)
        else {
          c.close()
          resolve({ answers, failures })
        }
      },
      failed(_c, error) {
        failures.push(error)
        resolve({ answers, failures })
      },
    }
    new Connection({ host: '127.0.0.1', port }, events).send(request)
  })
}

describe('a bench connection', () => {
  it('keeps one connection alive across requests', async () => {
    const before = served
    const { answers, failures } = await exchange('/', 3)
    assert.deepEqual(failures, [])
    assert.deepEqual(answers, [
      [201, '{"couponId":1'],
      [201, '{"couponId":1'],
      [201, '{"couponId":1'],
    ])
    assert.equal(served - before, 3)
  })

  it('reads chunked answers', async () => {
    const { answers } = await exchange('/chunked', 2)
    assert.equal(answers.length, 2)
    assert.equal(answers[0]?.[0], 409)
    assert.ok(answers[0]?.[1].startsWith('{"code":"SOLD'))
  })

  it('reconnects after the server closes the connection', async () => {
    const { answers, failures } = await exchange('/close', 3)
    assert.deepEqual(failures, [])
    assert.deepEqual(
      answers.map((a) => a[0]),
      [503, 503, 503],
    )
  })

  it('reports a refused connection as a failure of the request in flight', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const deadPort = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const failure = await new Promise<Error>((resolve) => {
      const c = new Connection(
        { host: '127.0.0.1', port: deadPort },
        { response: () => {}, failed: (_c, error) => resolve(error) },
      )
      c.send('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
      assert.equal(c.busy, true)
    })
    assert.match(String((failure as NodeJS.ErrnoException).code), /ECONNREFUSED/)
  })

  it('drops a request given up as a timeout without reporting it again', async () => {
    let calls = 0
    const c = new Connection(
      { host: '127.0.0.1', port },
      { response: () => calls++, failed: () => calls++ },
    )
    const before = served
    c.send(withBody(requestPrefix({ method: 'POST', path: '/hang', host: 'x' }), '{}'))
    await waitFor('the request at the server', () => served > before)
    c.abort()
    assert.equal(c.busy, false)
    // Nothing may be reported later either: a short quiet time (an absence cannot be awaited).
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(calls, 0)
  })
})

describe('the open loop connection pool', () => {
  const get = (path: string) => requestPrefix({ method: 'GET', path, host: `127.0.0.1:${port}` })

  it('opens every connection and has each answer once before the load', async () => {
    const before = served
    const pool = new ConnectionPool({ host: '127.0.0.1', port })
    assert.equal(await pool.prime(30, get('/'), 5000), 30)
    assert.equal(served - before, 30)
    assert.equal(pool.all.length, 30)
    assert.ok(pool.all.every((c) => !c.busy))
    // Primed connections are reused: a request on one is not a fresh connection.
    const answered = await new Promise<boolean>((resolve) => {
      pool.handle({ response: (c) => resolve(c.fresh), failed: () => resolve(true) })
      pool.all[0]?.send(get('/'))
    })
    assert.equal(answered, false)
    for (const c of pool.all) c.close()
  })

  it('gives up on connections that do not answer in time', async () => {
    const pool = new ConnectionPool({ host: '127.0.0.1', port })
    const started = Date.now()
    const hang = withBody(requestPrefix({ method: 'POST', path: '/hang', host: 'x' }), '{}')
    assert.equal(await pool.prime(3, hang, 200), 0)
    assert.ok(Date.now() - started < 2000)
    assert.ok(pool.all.every((c) => !c.busy))
  })
})
