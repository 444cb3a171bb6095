/**
 * The winners' export as CSV (RFC 4180, with csv-stringify): a header, then
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
import { stringify } from 'csv-stringify/sync'
import type { ExportRow } from '../service/winners-export.js'

export const CSV_HEADER = 'rank,userId,state,issuedAt,usedAt,orderId,code\r\n'

const FORMULA_START = /^[=+\-@\t\r']/

/** A text value as a spreadsheet must see it: never the start of a formula. */
export function guardFormula(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value
}

const OPTIONS = {
  record_delimiter: 'windows',
  // csv-stringify quotes a lone CR or LF only when asked; RFC 4180 wants it quoted.
  quoted_match: /[\r\n]/,
  cast: { string: guardFormula },
} as const

/** Rows as CSV lines (no header). */
export function csvRows(rows: readonly ExportRow[]): string {
  return stringify(
    rows.map((r) => [
      r.rank,
      r.userId,
      r.state,
      r.issuedAt.toISOString(),
      r.usedAt?.toISOString() ?? null,
      r.orderId,
      r.code,
    ]),
    OPTIONS,
  )
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
