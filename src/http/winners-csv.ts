/**
 * The winners' export as CSV (RFC 4180): a header, then
 * `rank,userId,state,issuedAt,usedAt,orderId,code` a row, CRLF after each; a
 * field holding a comma, a quote or a line break is quoted, quotes doubled; a
 * null is an empty field; instants are ISO-8601 UTC.
 *
 * Spreadsheet guard: a text value that begins with `=`, `+`, `-`, `@`, a tab or
 * a carriage return is written with a leading apostrophe (`'`), so a spreadsheet
 * opening the file takes it as text, never as a formula (a partner code may be
 * any printable ASCII). It applies to every text value alike — userId, orderId,
 * code — so a userId `-42` (a valid id) is written `'-42`: shown as text, not
 * read as the number -42. A value that itself begins with an apostrophe (a code
 * may) gets one more, so the guard reverses exactly: a program reading the file
 * takes one leading apostrophe off every value that has one.
 */
import { Readable } from 'node:stream'
import type { ExportRow } from '../service/winners-export.js'

export const CSV_HEADER = 'rank,userId,state,issuedAt,usedAt,orderId,code\r\n'

const FORMULA_START = /^[=+\-@\t\r']/
/** RFC 4180: a field holding a comma, a quote, a CR or an LF is quoted. */
const NEEDS_QUOTES = /[",\r\n]/

/** A text value as a spreadsheet must see it: never the start of a formula. */
export function guardFormula(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value
}

/** A text field: guarded, then quoted (quotes doubled) when RFC 4180 asks; null is empty. */
function text(value: string | null): string {
  if (value === null) return ''
  const v = guardFormula(value)
  return NEEDS_QUOTES.test(v) ? `"${v.replaceAll('"', '""')}"` : v
}

/**
 * Rows as CSV lines (no header). Written here rather than through a CSV library:
 * this runs for every row of an export, and a general stringifier's per-record
 * and per-field garbage set the pace of V8's young collections, each of which
 * promotes the batch in flight to the old generation
 * (docs/benchmarks.md, "Partner codes and the winners' export").
 */
export function csvRows(rows: readonly ExportRow[]): string {
  let out = ''
  for (const r of rows)
    out += `${r.rank},${text(r.userId)},${r.state},${r.issuedAt.toISOString()},${r.usedAt?.toISOString() ?? ''},${text(r.orderId)},${text(r.code)}\r\n`
  return out
}

/**
 * The file as a stream that reads a batch of rows only when the one before has
 * been taken by the client: a slow client slows the cursor, it does not make the
 * server hold the file. Closing the stream (the client went away) ends the
 * batches, which closes the database cursor.
 */
export function winnersCsv(batches: AsyncGenerator<ExportRow[]>): Readable {
  return Readable.from(
    (async function* () {
      yield CSV_HEADER
      for await (const batch of batches) yield csvRows(batch)
    })(),
    { objectMode: false, highWaterMark: 64 * 1024 },
  )
}
