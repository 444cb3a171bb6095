import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  CHUNKED,
  chunkedEnd,
  parseHead,
  requestPrefix,
  withBody,
} from '../../packages/bench/src/http1.js'

describe('the bench HTTP/1.1 framing', () => {
  it('builds a request in one string', () => {
    const prefix = requestPrefix({ method: 'POST', path: '/v1/coupons/3/issues', host: 'h:1' })
    assert.equal(
      withBody(prefix, '{"userId":42}'),
      'POST /v1/coupons/3/issues HTTP/1.1\r\nhost: h:1\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{"userId":42}',
    )
    assert.equal(
      requestPrefix({ method: 'GET', path: '/readyz', host: 'h:1' }),
      'GET /readyz HTTP/1.1\r\nhost: h:1\r\n\r\n',
    )
  })

  it('reads status, body framing and keep-alive from a response head', () => {
    const raw = Buffer.from(
      'HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n{"a":HTTP/1.1 201',
    )
    const head = parseHead(raw, 0)
    assert.deepEqual(head, {
      status: 409,
      bodyStart: raw.indexOf('{'),
      contentLength: 5,
      close: false,
    })
    assert.equal(parseHead(Buffer.from('HTTP/1.1 200 OK\r\ncontent-len'), 0), null)
    const closing = parseHead(
      Buffer.from('HTTP/1.1 503 x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
      0,
    )
    assert.equal(closing?.close, true)
    assert.throws(() => parseHead(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'), 0), /not an HTTP/)
  })

  it('finds the end of a chunked body and its first bytes', () => {
    const raw = Buffer.from(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"cod\r\n3\r\ne":\r\n0\r\n\r\n',
    )
    const head = parseHead(raw, 0)
    assert.equal(head?.contentLength, CHUNKED)
    const body = chunkedEnd(raw, head?.bodyStart ?? 0)
    assert.equal(body?.end, raw.length)
    assert.equal(raw.toString('latin1', body?.dataStart, body?.dataEnd), '{"cod')
    assert.equal(chunkedEnd(raw.subarray(0, raw.length - 2), head?.bodyStart ?? 0), null)
  })
})
