import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ServerLog } from '../../packages/bench/src/server-log.js'

const pino = (level: number, msg: string, extra: Record<string, unknown> = {}) =>
  `${JSON.stringify({ level, time: 1, pid: 7, msg, ...extra })}\n`

describe("the started server's log", () => {
  it('counts warn and error lines, by message, most frequent first', () => {
    const log = new ServerLog()
    const out = log.stream()
    out(pino(30, 'Server listening'))
    out('firstcome listening on http://localhost:8080  (embedded)\n')
    for (let i = 0; i < 3; i++)
      out(pino(40, 'stream worker pass failed; backing off', { err: { message: 'ECONNRESET' } }))
    out(pino(50, 'replaying a request through Fastify failed'))
    out(pino(60, 'fatal'))
    assert.deepEqual(log.summary(), {
      warnings: 3,
      errors: 2,
      messages: [
        { level: 'warn', message: 'stream worker pass failed; backing off: ECONNRESET', count: 3 },
        { level: 'error', message: 'replaying a request through Fastify failed', count: 1 },
        { level: 'error', message: 'fatal', count: 1 },
      ],
    })
  })

  it('joins lines split across chunks, each stream apart', () => {
    const log = new ServerLog()
    const out = log.stream()
    const err = log.stream()
    const line = pino(40, 'slow')
    out(line.slice(0, 10))
    err('(node:42) MaxListenersExceededWarning: Possible')
    out(line.slice(10))
    err(' leak\n')
    assert.deepEqual(log.summary(), {
      warnings: 2,
      errors: 0,
      messages: [
        { level: 'warn', message: 'slow', count: 1 },
        { level: 'warn', message: 'MaxListenersExceededWarning: Possible leak', count: 1 },
      ],
    })
  })

  it('ignores what is not a log line, and an unfinished line', () => {
    const log = new ServerLog()
    const out = log.stream()
    out('{not json}\n[1,2]\nnull\n{"level":"warn","msg":"a string level"}\n')
    out(pino(40, 'no newline yet').trimEnd())
    assert.deepEqual(log.summary(), { warnings: 0, errors: 0, messages: [] })
  })

  it('keeps five messages and cuts a long one', () => {
    const log = new ServerLog()
    const out = log.stream()
    for (let i = 0; i < 8; i++) for (let n = 0; n <= i; n++) out(pino(40, `m${i}`))
    out(pino(40, 'x'.repeat(1000)))
    const s = log.summary()
    assert.equal(s.warnings, 37)
    assert.deepEqual(
      s.messages.map((m) => [m.message, m.count]),
      [
        ['m7', 8],
        ['m6', 7],
        ['m5', 6],
        ['m4', 5],
        ['m3', 4],
      ],
    )
    const long = new ServerLog()
    long.line(pino(50, 'y'.repeat(1000)))
    assert.equal(long.summary().messages[0]?.message.length, 301)
  })
})
