// test-lane: alone — measures sub-millisecond delays, which a busy machine blurs
/**
 * The delaying TCP proxy: each direction is delayed by its own delay (never
 * more than the release window early, a quarter of the delay up to 0.5 ms), and the bytes of every connection arrive whole and in order, with hundreds of
 * connections at once; a delay under a millisecond is kept on average (the
 * event loop's timers alone would make it one to two); the proxy process
 * forwards the same way.
 */
import assert from 'node:assert/strict'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { delayStats, spawnDelayProxy } from '../../packages/bench/src/delay-proxy.js'
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

  it('delays each direction by its own delay, at most the window early', async () => {
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
      for (const up of ups)
        assert.ok(up >= 14.5, `client → target took ${up} ms, less than 15 - 0.5`)
      for (const down of downs) assert.ok(down >= 39.5, `target → client took ${down} ms`)
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

  /**
   * Lock-step round trips (each chunk sent once the previous one came back), the
   * pattern a ticking proxy gets most wrong: through 0.5 ms and through 1 ms each
   * way, and the time each chunk waited in the proxy, as the proxy measured it.
   */
  async function lockStep(delayMs: number): Promise<{ meanMs: number; minMs: number }> {
    const proxy = new TcpProxy('127.0.0.1', echo.port, delayMs)
    const port = await proxy.start()
    const before = delayStats(delayMs)
    try {
      await Promise.all(
        Array.from({ length: 10 }, async (_, c) => {
          const s = await connect(port)
          const sent: number[] = []
          const got: number[] = []
          for (let i = 0; i < 60; i++) {
            const reply = readBytes(s, 4)
            const b = Buffer.alloc(4)
            b.writeUInt32BE(c * 1000 + i)
            s.write(b)
            sent.push(c * 1000 + i)
            got.push((await reply).readUInt32BE(0))
          }
          s.destroy()
          assert.deepEqual(got, sent, `connection ${c}: out of order`)
        }),
      )
    } finally {
      await proxy.close()
    }
    const after = delayStats(delayMs)
    const chunks = after.chunks - before.chunks
    assert.ok(chunks >= 2 * 10 * 60, `${chunks} chunks released`)
    return { meanMs: (after.sumMs - before.sumMs) / chunks, minMs: after.minMs }
  }

  it('keeps a 0.5 ms delay 0.5 ms on average, not the millisecond of a timer', async () => {
    // Side by side, so a busy machine delays both alike. A loaded machine makes
    // both late by the same scheduling delays, so their difference is the delays'
    // difference; with millisecond timers both took 1-2 ms and it was about 0.
    // Scheduling noise on a busy machine can swamp one measurement: up to three.
    const seen: string[] = []
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [half, one] = await Promise.all([lockStep(0.5), lockStep(1)])
      const diff = one.meanMs - half.meanMs
      seen.push(
        `0.5 ms mean ${half.meanMs.toFixed(3)} (least ${half.minMs.toFixed(3)}), 1 ms mean ${one.meanMs.toFixed(3)}`,
      )
      console.log(`  time in the proxy: ${seen.at(-1)}`)
      // Never early by more than the release window (0.125 ms for 0.5 ms).
      assert.ok(half.minMs >= 0.37, `a chunk left after ${half.minMs} ms of 0.5`)
      if (diff > 0.2 && diff < 0.9) return
    }
    assert.fail(`1 ms minus 0.5 ms was not about 0.5 ms in any attempt: ${seen.join('; ')}`)
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
      // Measured (the process's own CPU, from /proc): it started and forwarded.
      const cpuMs = proxy.cpuMs()
      assert.ok(cpuMs !== null && cpuMs > 0, `the proxy's CPU: ${cpuMs} ms`)
    } finally {
      await proxy.stop()
    }
  })
})
