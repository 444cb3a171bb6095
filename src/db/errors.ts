/**
 * Is a database error worth retrying as it is (the database is down, restarting,
 * overloaded, or a lock conflict), or is it about the data (a poison row)?
 */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'EMFILE', // out of descriptors: a connection could not be opened
  'ENFILE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  '40001', // serialization failure
  '40P01', // deadlock detected
  '53300', // too many connections
  '55P03', // lock not available
  '57P01', // admin shutdown
  '57P02', // crash shutdown
  '57P03', // cannot connect now
  // The bounds this service sets on every session (statement, idle transaction):
  // the call took too long, which says nothing about its data.
  '57014', // statement timeout (query canceled)
  '25P03', // idle-in-transaction session timeout
  'ER_QUERY_TIMEOUT', // MySQL max_execution_time
])

/** MariaDB's max_statement_time, an errno mysql2 has no name for. */
const MARIADB_STATEMENT_TIMEOUT = 1969

const TRANSIENT_MESSAGE = /connection|timeout|timed out|terminat|closed|ECONNREFUSED|not queryable/i

export function isTransientDbError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = String((err as { code?: unknown }).code ?? '')
  if (TRANSIENT_CODES.has(code) || code.startsWith('08')) return true
  if ((err as { errno?: unknown }).errno === MARIADB_STATEMENT_TIMEOUT) return true
  // pg reports "Connection terminated unexpectedly" and pool timeouts without a code.
  return code === '' && TRANSIENT_MESSAGE.test(err.message)
}

/** A UNIQUE index refused a row (the pair is already there). */
export function isUniqueViolation(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = String((err as { code?: unknown }).code ?? '')
  return code === '23505' || code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE'
}
