/**
 * The delaying TCP proxy: each direction is delayed by at least its own delay,
 * and the bytes of every connection arrive whole and in order, with hundreds of
 * connections at once; the proxy process forwards the same way.
 */
import assert from 'node:assert/strict'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnDelayProxy } from '../../packages/bench/src/delay-proxy.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'

/** A loopback server calling `onSocket` for each connection. */
async function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onSocket)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  return { server, port: typeof address === 'object' && address ? address.port : 0 }
}

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => resolve(s))
    s.once('error', reject)
  })
}

/** Reads from `s` until `n` bytes have come. */
function readBytes(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let got = 0
    const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`))
    const onData = (c: Buffer) => {
      chunks.push(c)
      got += c.length
      if (got < n) return
      s.off('data', onData)
      s.off('error', reject)
      s.off('close', onClose)
      resolve(Buffer.concat(chunks))
    }
    s.on('data', onData)
    s.once('error', reject)
    s.once('close', onClose)
  })
}

describe('delaying TCP proxy', () => {
  let echo: { server: Server; port: number }
  /** when each probe byte reached the target, and when the target answered it */
  const arrivals: number[] = []

  before(async () => {
    echo = await listen((s) =>
      s.on('data', (c) => {
        arrivals.push(performance.now())
        s.write(c)
      }),
    )
  })
  after(() => new Promise<void>((resolve) => echo.server.close(() => resolve())))

  it('delays each direction by at least its own delay', async () => {
    const proxy = new TcpProxy('127.0.0.1', echo.port, { up: 15, down: 40 })
    const port = await proxy.start()
    try {
      const s = await connect(port)
      const ups: number[] = []
      const downs: number[] = []
      for (let i = 0; i < 10; i++) {
        arrivals.length = 0
        const sent = performance.now()
        const reply = readBytes(s, 1)
        s.write(Buffer.from([i]))
        assert.deepEqual([...(await reply)], [i])
        const received = performance.now()
        const arrived = arrivals[0] ?? Number.NaN
        ups.push(arrived - sent)
        downs.push(received - arrived)
      }
      s.destroy()
      console.log(
        `  up (15 ms): min ${Math.min(...ups).toFixed(2)} ms; down (40 ms): min ${Math.min(...downs).toFixed(2)} ms`,
      )
      for (const up of ups) assert.ok(up >= 15, `client → target took ${up} ms, less than 15`)
      for (const down of downs) assert.ok(down >= 40, `target → client took ${down} ms`)
    } finally {
      await proxy.close()
    }
  })

  it('keeps every connection whole and in order, 300 at once, through a 1 ms delay', async () => {
    const proxy = new TcpProxy('127.0.0.1', echo.port, 1)
    const port = await proxy.start()
    const CONNECTIONS = 300
    const CHUNKS = 50
    try {
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async (_, c) => {
          const s = await connect(port)
          // Each chunk a run of 4-byte sequence numbers, sent with pauses between
          // some, so chunks of many connections interleave in the proxy's queues.
          const parts: Buffer[] = []
          let seq = 0
          for (let i = 0; i < CHUNKS; i++) {
            const words = 1 + ((c * 7 + i * 13) % 40)
            const b = Buffer.alloc(words * 4)
            for (let w = 0; w < words; w++) b.writeUInt32BE(c * 1_000_000 + seq++, w * 4)
            parts.push(b)
          }
          const expected = Buffer.concat(parts)
          const got = readBytes(s, expected.length)
          for (const [i, p] of parts.entries()) {
            s.write(p)
            if (i % 10 === c % 10) await sleep(1)
          }
          const bytes = await got
          s.destroy()
          assert.equal(bytes.length, expected.length, `connection ${c}: length`)
          assert.ok(bytes.equals(expected), `connection ${c}: bytes out of order or altered`)
        }),
      )
    } finally {
      await proxy.close()
    }
  })

  it('runs as a process of its own, forwarding with the delay', async () => {
    const proxy = await spawnDelayProxy(5, [{ host: '127.0.0.1', port: echo.port }])
    try {
      const s = await connect(proxy.ports[0] ?? 0)
      const sent = performance.now()
      const reply = readBytes(s, 5)
      s.write('hello')
      assert.equal((await reply).toString(), 'hello')
      const rtt = performance.now() - sent
      s.destroy()
      assert.ok(rtt >= 10, `round trip ${rtt} ms through 5 ms each way`)
      assert.ok((proxy.cpuMs() ?? 0) >= 0)
    } finally {
      await proxy.stop()
    }
  })
})
