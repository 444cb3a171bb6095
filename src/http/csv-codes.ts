/**
 * A `text/csv` body of partner codes (RFC 4180, read with csv-parse):
 * - one code a record, one field a record (a line with a comma outside quotes is
 *   refused: one code a line);
 * - records end with CRLF or LF; the last may end without one, and one line
 *   break at the very end ends the last record (it is no empty code); any other
 *   empty line is an empty code, refused;
 * - a field may be quoted, `""` inside quotes being one `"`; a line break inside
 *   quotes is a control character in the code, refused;
 * - no header unless the type says so, as RFC 4180 provides:
 *   `Content-Type: text/csv; header=present` skips the first record;
 * - a UTF-8 byte order mark at the start (spreadsheets write one) is skipped.
 * Each code is judged as it is read (printable ASCII, 1..128: CodeList).
 *
 * The body is received whole first, then parsed: parsing as it arrives would
 * hold the upload back at the parser's pace, and the request must arrive within
 * REQUEST_TIMEOUT_MS. Parsed from memory, in chunks, the event loop still gets
 * a turn between them; a chunk parsed is let go, and the codes go into a
 * CodeList, so a million codes are held as the body's bytes and the list's few
 * large strings, never as a million-element array.
 */
import { Readable } from 'node:stream'
import { CsvError, parse } from 'csv-parse'
import { CodeList, MAX_CODE_LENGTH, MAX_CODES_PER_CALL } from '../domain/codes.js'
import { AppError } from '../domain/errors.js'

/** A record longer than this is not a code: refused before it is gathered whole. */
const MAX_RECORD_BYTES = 4 * MAX_CODE_LENGTH

/** Does the Content-Type say the first record is a header (`header=present`)? */
export function hasHeader(contentType: string | undefined): boolean {
  return /;\s*header\s*=\s*"?present"?\s*(;|$)/i.test(contentType ?? '')
}

/**
 * The body's bytes, in the chunks they came in; 413 past `limitBytes` (the rest
 * is still read, and dropped, so the answer reaches the client).
 */
export function receive(body: Readable, limitBytes: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    body.on('data', (chunk: Buffer) => {
      if (bytes > limitBytes) return
      bytes += chunk.length
      if (bytes <= limitBytes) chunks.push(chunk)
      else reject(new AppError('PAYLOAD_TOO_LARGE', 'The request body is too large.'))
    })
    body.on('end', () => resolve(chunks))
    body.on('error', reject)
  })
}

/** The chunks in order, each let go once taken. */
function* draining(chunks: (Buffer | undefined)[]): Generator<Buffer> {
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i] as Buffer
    chunks[i] = undefined
    yield chunk
  }
}

/** The codes of a CSV body of at most `limitBytes`, in order. */
export async function codesFromCsv(
  payload: Readable,
  options: { header: boolean; limitBytes: number },
): Promise<CodeList> {
  const body = Readable.from(draining(await receive(payload, options.limitBytes)))
  const parser = parse({
    bom: true,
    record_delimiter: ['\r\n', '\n'],
    relax_column_count: true,
    skip_empty_lines: false,
    max_record_size: MAX_RECORD_BYTES,
  })
  body.pipe(parser)
  const codes = new CodeList()
  let skip = options.header
  try {
    // Records, not { record, info }: csv-parse's info object per record made a
    // million-line body several times slower to read.
    for await (const record of parser as AsyncIterable<string[]>) {
      if (skip) {
        skip = false
        continue
      }
      if (record.length !== 1)
        throw new AppError(
          'VALIDATION_FAILED',
          `code #${codes.length + 1} has ${record.length} fields: one code a line (quote a code that holds a comma)`,
        )
      if (codes.length === MAX_CODES_PER_CALL)
        throw new AppError(
          'VALIDATION_FAILED',
          `at most ${MAX_CODES_PER_CALL.toLocaleString('en')} codes per call`,
        )
      codes.push(record[0] as string)
    }
  } catch (err) {
    body.destroy()
    if (err instanceof CsvError)
      throw new AppError('VALIDATION_FAILED', `The body is not valid CSV: ${err.message}`)
    throw err
  }
  return codes
}
