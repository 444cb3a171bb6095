/**
 * The one classification of database errors, for every route, the group commit
 * and the stream worker. Each error is given a fault, and each fault one
 * decision (`FAULT_DECISIONS`):
 *
 * - the database's own trouble (down, timing out, read-only, full, broken, or an
 *   error never seen before): the database layer throws it on as UnavailableError
 *   (see classified-dialect.ts), so a route answers 503 UNAVAILABLE with
 *   Retry-After, and the worker and the group commit keep the wins and retry for
 *   as long as it lasts — such an error never counts against a win;
 * - the row's own fault (a constraint, a bad value): counts against that win (the
 *   worker dead-letters it after WORKER_MAX_ATTEMPTS, the group commit drops it);
 *   a route that meets one has a bug (its input passed validation), so 500;
 * - the statement's own fault (syntax, an unknown table or column: a bug or a
 *   migration not run): 500; the worker keeps the wins and retries, since no row
 *   is to blame and a fixed deployment will persist them.
 *
 * The one decision for an error never seen before: the database's. A retry is
 * safe on every route (the Idempotency-Key, an order id), whereas a 500 tells a
 * client not to retry and the worker would have to give a win up; the log line
 * names it (`reason: unknown`) so it gets a row in the tables below.
 *
 * Tables per dialect: PostgreSQL by SQLSTATE (a code, else its class), MySQL and
 * MariaDB by error number or name (mysql2 gives both; else the SQLSTATE class),
 * SQLite by result code (extended codes by their primary code), and the errors a
 * client library or Node raises without a server's code.
 */
import { UnavailableError } from '../domain/errors.js'

export const DB_FAULTS = [
  /** no connection: refused, lost, reset, too many, the server shutting down, none free in time */
  'unreachable',
  /** a bound ran out: statement timeout, lock timeout, idle transaction ended, query cancelled */
  'timeout',
  /** lost to another transaction: serialization failure, deadlock, the database busy or locked */
  'conflict',
  /** the database takes no writes: a read-only transaction, server or file */
  'read-only',
  /** out of room: disk, table or memory full */
  'full',
  /** the server's storage failed: an I/O error, corruption */
  'broken',
  /** the row itself: a constraint, a value the column refuses */
  'row',
  /** the statement itself: syntax, an unknown table or column, misuse of the driver */
  'program',
  /** never seen before */
  'unknown',
] as const

export type DbFault = (typeof DB_FAULTS)[number]

/** Whose fault it is; each has one answer (see the file's header). */
export type Blame = 'database' | 'row' | 'program'

export interface FaultDecision {
  blame: Blame
  /** the database cannot take writes: readiness reports it while writes fail so */
  cannotWrite: boolean
}

export const FAULT_DECISIONS = {
  unreachable: { blame: 'database', cannotWrite: false },
  timeout: { blame: 'database', cannotWrite: false },
  conflict: { blame: 'database', cannotWrite: false },
  'read-only': { blame: 'database', cannotWrite: true },
  full: { blame: 'database', cannotWrite: true },
  broken: { blame: 'database', cannotWrite: true },
  row: { blame: 'row', cannotWrite: false },
  program: { blame: 'program', cannotWrite: false },
  unknown: { blame: 'database', cannotWrite: false },
} as const satisfies Record<DbFault, FaultDecision>

/** PostgreSQL SQLSTATEs that their class alone would misjudge. */
const POSTGRES_CODES: Readonly<Record<string, DbFault>> = {
  '25006': 'read-only', // read_only_sql_transaction (default_transaction_read_only, a standby)
  '25P03': 'timeout', // idle_in_transaction_session_timeout
  '25P04': 'timeout', // transaction_timeout
  '40002': 'row', // transaction_integrity_constraint_violation (a deferred constraint)
  '53300': 'unreachable', // too_many_connections
  '53400': 'unreachable', // configuration_limit_exceeded
  '55P03': 'timeout', // lock_not_available (lock_timeout)
  '57014': 'timeout', // query_canceled (statement_timeout, a cancel)
  '72000': 'conflict', // snapshot_too_old
}

/** PostgreSQL SQLSTATE classes (the first two characters). */
const POSTGRES_CLASSES: Readonly<Record<string, DbFault>> = {
  '08': 'unreachable', // connection exception
  '0A': 'program', // feature not supported
  '22': 'row', // data exception
  '23': 'row', // integrity constraint violation
  '25': 'program', // invalid transaction state (but the codes above)
  '26': 'program', // invalid SQL statement name
  '28': 'unreachable', // invalid authorization: the database turns us away
  '34': 'program', // invalid cursor name
  '3D': 'unreachable', // invalid catalog name: the database is not there
  '3F': 'program', // invalid schema name
  '40': 'conflict', // transaction rollback: serialization failure 40001, deadlock 40P01
  '42': 'program', // syntax error or access rule violation
  '53': 'full', // insufficient resources: disk full 53100, out of memory 53200
  '54': 'program', // program limit exceeded
  '55': 'conflict', // object not in prerequisite state
  '57': 'unreachable', // operator intervention: shutdown 57P01–57P03, database dropped 57P04
  '58': 'broken', // system error: I/O error 58030
  XX: 'broken', // internal error, data or index corrupted
}

const SQLSTATE = /^[0-9A-Z]{5}$/

function postgresFault(sqlState: string): DbFault {
  return POSTGRES_CODES[sqlState] ?? POSTGRES_CLASSES[sqlState.slice(0, 2)] ?? 'unknown'
}

/** MySQL and MariaDB server errors: name, number, fault. */
const MYSQL_ERRORS: readonly (readonly [name: string, errno: number, fault: DbFault])[] = [
  ['ER_OPTION_PREVENTS_STATEMENT', 1290, 'read-only'], // --read-only, --super-read-only
  ['ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION', 1792, 'read-only'],
  ['ER_READ_ONLY_MODE', 1836, 'read-only'],
  ['ER_INNODB_READ_ONLY', 1874, 'read-only'],
  ['ER_DISK_FULL', 1021, 'full'],
  ['ER_RECORD_FILE_FULL', 1114, 'full'], // the table is full
  ['ER_OUTOFMEMORY', 1037, 'full'],
  ['ER_OUT_OF_SORTMEMORY', 1038, 'full'],
  ['ER_OUT_OF_RESOURCES', 1041, 'full'],
  ['ER_LOCK_TABLE_FULL', 1206, 'full'],
  ['ER_GET_ERRNO', 1030, 'broken'], // the storage engine failed (errno 28: no space)
  ['ER_ERROR_DURING_COMMIT', 1180, 'broken'],
  ['ER_LOCK_WAIT_TIMEOUT', 1205, 'timeout'],
  ['ER_QUERY_TIMEOUT', 3024, 'timeout'], // MySQL max_execution_time
  ['ER_STATEMENT_TIMEOUT', 1969, 'timeout'], // MariaDB max_statement_time
  ['ER_QUERY_INTERRUPTED', 1317, 'timeout'], // KILL QUERY
  ['ER_LOCK_DEADLOCK', 1213, 'conflict'],
  ['ER_LOCK_NOWAIT', 3572, 'conflict'],
  ['ER_CON_COUNT_ERROR', 1040, 'unreachable'],
  ['ER_TOO_MANY_USER_CONNECTIONS', 1203, 'unreachable'],
  ['ER_USER_LIMIT_REACHED', 1226, 'unreachable'],
  ['ER_SERVER_SHUTDOWN', 1053, 'unreachable'],
  ['ER_CONNECTION_KILLED', 1927, 'unreachable'], // MariaDB: KILL CONNECTION
  ['ER_CLIENT_INTERACTION_TIMEOUT', 4031, 'unreachable'],
  ['ER_NET_READ_ERROR', 1158, 'unreachable'],
  ['ER_NET_READ_INTERRUPTED', 1159, 'unreachable'],
  ['ER_NET_ERROR_ON_WRITE', 1160, 'unreachable'],
  ['ER_NET_WRITE_INTERRUPTED', 1161, 'unreachable'],
  ['ER_ACCESS_DENIED_ERROR', 1045, 'unreachable'],
  ['ER_DBACCESS_DENIED_ERROR', 1044, 'unreachable'],
  ['ER_BAD_DB_ERROR', 1049, 'unreachable'],
  ['CR_CONNECTION_ERROR', 2002, 'unreachable'],
  ['CR_CONN_HOST_ERROR', 2003, 'unreachable'],
  ['CR_SERVER_GONE_ERROR', 2006, 'unreachable'],
  ['CR_SERVER_LOST', 2013, 'unreachable'],
  ['ER_DUP_KEY', 1022, 'row'],
  ['ER_BAD_NULL_ERROR', 1048, 'row'],
  ['ER_DUP_ENTRY', 1062, 'row'],
  ['ER_NO_REFERENCED_ROW', 1216, 'row'],
  ['ER_WARN_NULL_TO_NOTNULL', 1263, 'row'],
  ['ER_WARN_DATA_OUT_OF_RANGE', 1264, 'row'],
  ['ER_TRUNCATED_WRONG_VALUE', 1292, 'row'],
  ['ER_INVALID_CHARACTER_STRING', 1300, 'row'],
  ['ER_DIVISION_BY_ZERO', 1365, 'row'],
  ['ER_TRUNCATED_WRONG_VALUE_FOR_FIELD', 1366, 'row'],
  ['ER_DATA_TOO_LONG', 1406, 'row'],
  ['ER_WRONG_VALUE_FOR_TYPE', 1411, 'row'],
  ['ER_NO_REFERENCED_ROW_2', 1452, 'row'],
  ['ER_DUP_ENTRY_WITH_KEY_NAME', 1586, 'row'],
  ['ER_CHECK_CONSTRAINT_VIOLATED', 3819, 'row'],
  ['ER_CONSTRAINT_FAILED', 4025, 'row'], // MariaDB's CHECK constraint
  ['ER_PARSE_ERROR', 1064, 'program'],
  ['ER_BAD_FIELD_ERROR', 1054, 'program'],
  ['ER_NO_SUCH_TABLE', 1146, 'program'],
]
const MYSQL_BY_NAME = new Map(MYSQL_ERRORS.map(([name, , fault]) => [name, fault]))
const MYSQL_BY_ERRNO = new Map(MYSQL_ERRORS.map(([, errno, fault]) => [errno, fault]))

/** What mysql2 raises itself, by its code (it sets no server errno then). */
const MYSQL_CLIENT_CODES: Readonly<Record<string, DbFault>> = {
  PROTOCOL_CONNECTION_LOST: 'unreachable',
  PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR: 'unreachable',
  PROTOCOL_ENQUEUE_AFTER_QUIT: 'unreachable',
  PROTOCOL_SEQUENCE_TIMEOUT: 'timeout', // the client's bound on a query
}

/** SQLite primary result codes (an extended code, SQLITE_IOERR_WRITE, by its primary). */
const SQLITE_CODES: Readonly<Record<string, DbFault>> = {
  SQLITE_BUSY: 'conflict', // busy_timeout passed: another process holds the write lock
  SQLITE_LOCKED: 'conflict',
  SQLITE_PROTOCOL: 'conflict',
  SQLITE_SCHEMA: 'conflict',
  SQLITE_ABORT: 'conflict',
  SQLITE_INTERRUPT: 'timeout',
  SQLITE_READONLY: 'read-only',
  SQLITE_PERM: 'read-only',
  SQLITE_FULL: 'full',
  SQLITE_NOMEM: 'full',
  SQLITE_IOERR: 'broken',
  SQLITE_CORRUPT: 'broken',
  SQLITE_NOTADB: 'broken',
  SQLITE_NOLFS: 'broken',
  SQLITE_INTERNAL: 'broken',
  SQLITE_CANTOPEN: 'unreachable',
  SQLITE_CONSTRAINT: 'row',
  SQLITE_MISMATCH: 'row',
  SQLITE_TOOBIG: 'row',
  SQLITE_ERROR: 'program', // no such table or column, a syntax error
  SQLITE_MISUSE: 'program',
  SQLITE_RANGE: 'program',
  SQLITE_AUTH: 'program',
  SQLITE_FORMAT: 'program',
}

/** Node's system errors, met opening or using a connection. */
const SYSTEM_CODES: Readonly<Record<string, DbFault>> = {
  ECONNREFUSED: 'unreachable',
  ECONNRESET: 'unreachable',
  ECONNABORTED: 'unreachable',
  ETIMEDOUT: 'unreachable',
  EPIPE: 'unreachable',
  ENOTFOUND: 'unreachable',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EAI_AGAIN: 'unreachable',
  EMFILE: 'unreachable', // out of descriptors: a connection could not be opened
  ENFILE: 'unreachable',
  ENOSPC: 'full',
  EROFS: 'read-only',
  EIO: 'broken',
}

/**
 * Errors with no code: pg's "Connection terminated unexpectedly", "timeout
 * exceeded when trying to connect", "Query read timeout", "Client has encountered
 * a connection error and is not queryable"; the pool bound of database.ts; Kysely
 * closed ("driver has already been destroyed").
 */
const TIMEOUT_MESSAGE = /timeout|timed out/i
const UNREACHABLE_MESSAGE = /connection|terminat|closed|not queryable|destroyed/i

/** Errors a bug throws in JavaScript, inside a driver or out. */
const PROGRAM_ERRORS = new Set(['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError'])

function isDbFault(value: unknown): value is DbFault {
  return (DB_FAULTS as readonly unknown[]).includes(value)
}

export function classifyDbError(err: unknown): DbFault {
  if (!(err instanceof Error)) return 'unknown'
  // Already classified and thrown on by the database layer.
  if (err instanceof UnavailableError) return isDbFault(err.reason) ? err.reason : 'unreachable'
  const { code, errno, sqlState } = err as { code?: unknown; errno?: unknown; sqlState?: unknown }
  if (typeof code === 'string' && code !== '') {
    const system = SYSTEM_CODES[code]
    if (system) return system
    if (code.startsWith('SQLITE_')) return SQLITE_CODES[code.split('_', 2).join('_')] ?? 'unknown'
    // mysql2: a server error has its number (Node's system errors' are negative).
    if (typeof errno === 'number' && errno > 0) {
      const fault = MYSQL_BY_ERRNO.get(errno) ?? MYSQL_BY_NAME.get(code)
      if (fault) return fault
      return typeof sqlState === 'string' && SQLSTATE.test(sqlState)
        ? postgresFault(sqlState)
        : 'unknown'
    }
    const named = MYSQL_BY_NAME.get(code) ?? MYSQL_CLIENT_CODES[code]
    if (named) return named
    if (SQLSTATE.test(code)) return postgresFault(code)
    return 'unknown'
  }
  if (typeof errno === 'number' && errno > 0) return MYSQL_BY_ERRNO.get(errno) ?? 'unknown'
  if (PROGRAM_ERRORS.has(err.name)) return 'program'
  if (TIMEOUT_MESSAGE.test(err.message)) return 'timeout'
  if (UNREACHABLE_MESSAGE.test(err.message)) return 'unreachable'
  return 'unknown'
}

/** Only what the database says about a row itself counts against that win. */
export function isRowError(err: unknown): boolean {
  return FAULT_DECISIONS[classifyDbError(err)].blame === 'row'
}

/**
 * A driver's error as it leaves the database layer: the database's own trouble
 * becomes UnavailableError (503, retried), naming the fault and the driver's code;
 * a row's or a statement's fault goes on as it is.
 */
export function toDomainError(err: unknown, fault: DbFault = classifyDbError(err)): unknown {
  if (FAULT_DECISIONS[fault].blame !== 'database' || err instanceof UnavailableError) return err
  const { code, errno } = (err ?? {}) as { code?: unknown; errno?: unknown }
  const detail =
    typeof code === 'string' && code !== ''
      ? code
      : typeof errno === 'number' && errno > 0
        ? `errno ${errno}`
        : undefined
  return new UnavailableError('database', err, fault, detail)
}

/** A UNIQUE index refused a row (the pair is already there). */
export function isUniqueViolation(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = String((err as { code?: unknown }).code ?? '')
  return code === '23505' || code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE'
}

/** In the message of every refusal of migration 003's rank trigger. */
export const RANK_REFUSED = 'RANK_REFUSED: rank outside 1..total_quantity'

/**
 * The database refused wins for their rank: another user holds it (the unique
 * (coupon, rank) index of migration 003 skipped the row), or it lies outside
 * 1..total_quantity (its trigger). An integrity constraint violation (SQLSTATE
 * class 23), so the row is to blame (isRowError).
 */
export class RankRefusedError extends Error {
  override readonly name = 'RankRefusedError'
  readonly code = '23000'
  readonly userIds: readonly string[]

  constructor(couponId: number, userIds: readonly string[]) {
    super(`coupon ${couponId}: the database refused the rank of ${userIds.length} wins`)
    this.userIds = userIds
  }
}

/** The database refused a win for its rank (see RankRefusedError). */
export function isRankRefusal(err: unknown): boolean {
  return (
    err instanceof RankRefusedError || (err instanceof Error && err.message.includes(RANK_REFUSED))
  )
}
