/**
 * Just enough HTTP/1.1 for a load generator: a request is one latin-1 string
 * written in one call, and a response is framed by its head (status,
 * Content-Length or chunked, Connection: close) without building header objects.
 * What a general client does on top (redirects, header maps, body streams) is the
 * cost this file exists to avoid.
 */

export interface RequestShape {
  method: 'GET' | 'POST'
  path: string
  /** `host[:port]` for the Host header */
  host: string
  /** extra header lines, each `name: value` */
  headers?: readonly string[]
}

/**
 * The part of a request that never changes, ending where the Content-Length
 * value goes; `withBody` completes it. Bodies here are ASCII JSON, so string
 * length is byte length.
 */
export function requestPrefix(shape: RequestShape): string {
  const lines = [`${shape.method} ${shape.path} HTTP/1.1`, `host: ${shape.host}`]
  for (const h of shape.headers ?? []) lines.push(h)
  if (shape.method === 'GET') return `${lines.join('\r\n')}\r\n\r\n`
  lines.push('content-type: application/json', 'content-length: ')
  return lines.join('\r\n')
}

export function withBody(prefix: string, body: string): string {
  return `${prefix}${body.length}\r\n\r\n${body}`
}

export const CHUNKED = -1

export interface ResponseHead {
  status: number
  /** offset of the first body byte */
  bodyStart: number
  /** body length, or CHUNKED */
  contentLength: number
  /** the server will close the connection after this response */
  close: boolean
}

const HEAD_END = Buffer.from('\r\n\r\n')

/**
 * Parses the head of the response starting at `from`. Returns null when the head
 * is not complete yet, and throws on something that is not an HTTP/1.x response
 * (the connection is then useless and is dropped).
 */
export function parseHead(buf: Buffer, from: number): ResponseHead | null {
  const end = buf.indexOf(HEAD_END, from)
  if (end < 0) return null
  // "HTTP/1.1 201 Created": the status is always bytes 9..11.
  if (buf[from] !== 0x48 || buf[from + 4] !== 0x2f || buf[from + 8] !== 0x20) {
    throw new Error(
      `not an HTTP/1.x response: ${JSON.stringify(buf.toString('latin1', from, from + 16))}`,
    )
  }
  const status =
    ((buf[from + 9] ?? 0) - 48) * 100 +
    ((buf[from + 10] ?? 0) - 48) * 10 +
    (buf[from + 11] ?? 0) -
    48
  const head = buf.toString('latin1', from, end + 2).toLowerCase()
  let contentLength = 0
  const cl = head.indexOf('\r\ncontent-length:')
  if (cl >= 0) {
    contentLength = Number.parseInt(head.slice(cl + 17, head.indexOf('\r\n', cl + 17)), 10)
    if (!(contentLength >= 0)) throw new Error('bad content-length')
  } else if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    contentLength = CHUNKED
  } else if (status >= 200 && status !== 204 && status !== 304) {
    // A body delimited by the end of the connection: never sent by the servers
    // this bench targets, and it would make keep-alive impossible.
    throw new Error('response without content-length or chunked encoding')
  }
  const close = /\r\nconnection:[^\r]*close/.test(head) || buf[from + 7] === 0x30 // HTTP/1.0
  return { status, bodyStart: end + 4, contentLength, close }
}

/**
 * Finds the end of a chunked body starting at `from`. Returns the offset just
 * past the final CRLF and where the first chunk's data lies (for the outcome
 * prefix), or null when more bytes are needed. Trailers are not expected.
 */
export function chunkedEnd(
  buf: Buffer,
  from: number,
): { end: number; dataStart: number; dataEnd: number } | null {
  let at = from
  let dataStart = -1
  let dataEnd = -1
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', at, 'latin1')
    if (lineEnd < 0) return null
    const size = Number.parseInt(buf.toString('latin1', at, lineEnd), 16)
    if (!(size >= 0)) throw new Error('bad chunk size')
    if (size === 0) {
      if (buf.length < lineEnd + 4) return null
      if (dataStart < 0) dataStart = dataEnd = lineEnd + 2
      return { end: lineEnd + 4, dataStart, dataEnd }
    }
    const next = lineEnd + 2 + size + 2
    if (buf.length < next) return null
    if (dataStart < 0) {
      dataStart = lineEnd + 2
      dataEnd = lineEnd + 2 + size
    }
    at = next
  }
}
