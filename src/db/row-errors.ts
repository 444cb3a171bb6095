/**
 * Did the database refuse a write because of the rows it was given (integrity and
 * data errors), or because of itself? Only the first may count against a win: a
 * win is given up (dead-lettered, or dropped before its answer) for nothing less
 * than the database refusing that very row. Everything else — down, restarting,
 * read-only, disk full, out of connections or descriptors, a statement timeout, an
 * error never seen before — is the database's, and the write waits and is retried
 * for as long as it takes.
 *
 * One table per dialect: PostgreSQL by SQLSTATE class, MySQL/MariaDB by error
 * name or number (mysql2 gives both), SQLite by result code.
 */

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation). */
const POSTGRES_ROW_CLASS = /^2[23][0-9A-Z]{3}$/

/** MySQL/MariaDB: the errors one row causes, by name and by number. */
const MYSQL_ROW_ERRORS: Readonly<Record<string, number>> = {
  ER_DUP_KEY: 1022,
  ER_BAD_NULL_ERROR: 1048,
  ER_DUP_ENTRY: 1062,
  ER_NO_REFERENCED_ROW: 1216,
  ER_WARN_NULL_TO_NOTNULL: 1263,
  ER_WARN_DATA_OUT_OF_RANGE: 1264,
  ER_TRUNCATED_WRONG_VALUE: 1292,
  ER_INVALID_CHARACTER_STRING: 1300,
  ER_DIVISION_BY_ZERO: 1365,
  ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: 1366,
  ER_DATA_TOO_LONG: 1406,
  ER_WRONG_VALUE_FOR_TYPE: 1411,
  ER_NO_REFERENCED_ROW_2: 1452,
  ER_DUP_ENTRY_WITH_KEY_NAME: 1586,
  ER_CHECK_CONSTRAINT_VIOLATED: 3819,
  /** MariaDB's CHECK constraint failure */
  ER_CONSTRAINT_FAILED: 4025,
}
const MYSQL_ROW_ERRNOS = new Set(Object.values(MYSQL_ROW_ERRORS))

/** SQLite: any constraint (SQLITE_CONSTRAINT and its extended codes), a type mismatch, too big. */
const SQLITE_ROW_CODE = /^SQLITE_(CONSTRAINT(_[A-Z]+)?|MISMATCH|TOOBIG)$/

export function isRowError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const { code, errno } = err as { code?: unknown; errno?: unknown }
  if (typeof code === 'string') {
    if (POSTGRES_ROW_CLASS.test(code) || SQLITE_ROW_CODE.test(code)) return true
    if (Object.hasOwn(MYSQL_ROW_ERRORS, code)) return true
  }
  // mysql2 sets errno to the server's error number; Node's system errors set it to
  // a negative number, so the two cannot be mistaken.
  return typeof errno === 'number' && MYSQL_ROW_ERRNOS.has(errno)
}
