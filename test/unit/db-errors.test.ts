/**
 * The one classification of database errors (src/db/errors.ts), and what each
 * fault becomes: over HTTP (503 with Retry-After, or 500), for the worker and the
 * group commit (counts against the row, or never), and for readiness.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import pino from 'pino'
import {
  classifyDbError,
  DB_FAULTS,
  type DbFault,
  FAULT_DECISIONS,
  isRowError,
  toDomainError,
} from '../../src/db/errors.js'
import { UnavailableError } from '../../src/domain/errors.js'
import { errorAnswer } from '../../src/http/errors.js'

/** An error shaped as pg throws a server's: a message and a SQLSTATE. */
const pgError = (code: string) =>
  Object.assign(new Error(`pg ${code}`), { code, severity: 'ERROR' })

/** As mysql2 throws a server's: the name as code, the number as errno, a SQLSTATE. */
const mysqlError = (code: string, errno: number, sqlState = 'HY000') =>
  Object.assign(new Error(`mysql ${code}`), { code, errno, sqlState, sqlMessage: code })

/** As better-sqlite3 throws one: a SqliteError with the (extended) result code. */
const sqliteError = (code: string) =>
  Object.assign(new Error(`sqlite ${code}`), { name: 'SqliteError', code })

/** As Node throws a system error: a code and a negative errno. */
const systemError = (code: string) =>
  Object.assign(new Error(`connect ${code}`), { code, errno: -1 })

const POSTGRES: [string, DbFault][] = [
  ['25006', 'read-only'], // default_transaction_read_only, a hot standby
  ['53100', 'full'], // disk full
  ['53200', 'full'], // out of memory
  ['53300', 'unreachable'], // too many connections
  ['57014', 'timeout'], // statement timeout, cancel
  ['55P03', 'timeout'], // lock timeout
  ['25P03', 'timeout'], // idle-in-transaction timeout
  ['08006', 'unreachable'], // connection failure
  ['08001', 'unreachable'],
  ['57P01', 'unreachable'], // admin shutdown (pg_terminate_backend)
  ['57P02', 'unreachable'], // crash shutdown
  ['57P03', 'unreachable'], // cannot connect now
  ['28P01', 'unreachable'], // password refused
  ['3D000', 'unreachable'], // no such database
  ['40001', 'conflict'], // serialization failure
  ['40P01', 'conflict'], // deadlock
  ['58030', 'broken'], // I/O error
  ['XX001', 'broken'], // data corrupted
  ['XX000', 'broken'],
  ['23505', 'row'],
  ['23503', 'row'],
  ['23502', 'row'],
  ['23514', 'row'],
  ['22001', 'row'],
  ['22003', 'row'],
  ['22P02', 'row'],
  ['22007', 'row'],
  ['42P01', 'program'], // undefined table: a migration not run
  ['42703', 'program'],
  ['42601', 'program'],
  ['0A000', 'program'],
  ['25P02', 'program'], // a statement after a failed one in the same transaction
  ['HV000', 'unknown'],
]

const MYSQL: [string, number, DbFault][] = [
  ['ER_OPTION_PREVENTS_STATEMENT', 1290, 'read-only'], // --read-only
  ['ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION', 1792, 'read-only'],
  ['ER_READ_ONLY_MODE', 1836, 'read-only'],
  ['ER_DISK_FULL', 1021, 'full'],
  ['ER_RECORD_FILE_FULL', 1114, 'full'],
  ['ER_OUT_OF_RESOURCES', 1041, 'full'],
  ['ER_GET_ERRNO', 1030, 'broken'],
  ['ER_LOCK_WAIT_TIMEOUT', 1205, 'timeout'],
  ['ER_QUERY_TIMEOUT', 3024, 'timeout'],
  ['ER_STATEMENT_TIMEOUT', 1969, 'timeout'],
  ['ER_QUERY_INTERRUPTED', 1317, 'timeout'],
  ['ER_LOCK_DEADLOCK', 1213, 'conflict'],
  ['ER_CON_COUNT_ERROR', 1040, 'unreachable'],
  ['ER_SERVER_SHUTDOWN', 1053, 'unreachable'],
  ['ER_CONNECTION_KILLED', 1927, 'unreachable'],
  ['CR_SERVER_GONE_ERROR', 2006, 'unreachable'],
  ['CR_SERVER_LOST', 2013, 'unreachable'],
  ['ER_DUP_ENTRY', 1062, 'row'],
  ['ER_NO_REFERENCED_ROW_2', 1452, 'row'],
  ['ER_NO_REFERENCED_ROW', 1216, 'row'],
  ['ER_BAD_NULL_ERROR', 1048, 'row'],
  ['ER_DATA_TOO_LONG', 1406, 'row'],
  ['ER_TRUNCATED_WRONG_VALUE', 1292, 'row'],
  ['ER_TRUNCATED_WRONG_VALUE_FOR_FIELD', 1366, 'row'],
  ['ER_WARN_DATA_OUT_OF_RANGE', 1264, 'row'],
  ['ER_CONSTRAINT_FAILED', 4025, 'row'],
  ['ER_PARSE_ERROR', 1064, 'program'],
  ['ER_NO_SUCH_TABLE', 1146, 'program'],
  ['ER_BAD_FIELD_ERROR', 1054, 'program'],
]

const SQLITE: [string, DbFault][] = [
  ['SQLITE_FULL', 'full'],
  ['SQLITE_NOMEM', 'full'],
  ['SQLITE_READONLY', 'read-only'],
  ['SQLITE_READONLY_DBMOVED', 'read-only'],
  ['SQLITE_READONLY_RECOVERY', 'read-only'],
  ['SQLITE_PERM', 'read-only'],
  ['SQLITE_BUSY', 'conflict'], // busy_timeout passed
  ['SQLITE_BUSY_SNAPSHOT', 'conflict'],
  ['SQLITE_LOCKED', 'conflict'],
  ['SQLITE_INTERRUPT', 'timeout'],
  ['SQLITE_IOERR', 'broken'],
  ['SQLITE_IOERR_WRITE', 'broken'],
  ['SQLITE_IOERR_FSYNC', 'broken'],
  ['SQLITE_CORRUPT', 'broken'],
  ['SQLITE_CANTOPEN', 'unreachable'],
  ['SQLITE_CONSTRAINT', 'row'],
  ['SQLITE_CONSTRAINT_UNIQUE', 'row'],
  ['SQLITE_CONSTRAINT_FOREIGNKEY', 'row'],
  ['SQLITE_CONSTRAINT_NOTNULL', 'row'],
  ['SQLITE_CONSTRAINT_CHECK', 'row'],
  ['SQLITE_MISMATCH', 'row'],
  ['SQLITE_TOOBIG', 'row'],
  ['SQLITE_ERROR', 'program'], // no such table, a syntax error
  ['SQLITE_MISUSE', 'program'],
  ['SQLITE_SOMETHING_NEW', 'unknown'],
]

/** Errors a client library or Node raises, with no server's code. */
const CLIENT: [Error, DbFault][] = [
  [systemError('ECONNREFUSED'), 'unreachable'],
  [systemError('ECONNRESET'), 'unreachable'],
  [systemError('EPIPE'), 'unreachable'],
  [systemError('ETIMEDOUT'), 'unreachable'],
  [systemError('EMFILE'), 'unreachable'],
  [systemError('ENOSPC'), 'full'],
  [systemError('EROFS'), 'read-only'],
  [systemError('EIO'), 'broken'],
  [
    Object.assign(new Error('Connection lost'), { code: 'PROTOCOL_CONNECTION_LOST' }),
    'unreachable',
  ],
  [
    Object.assign(new Error('Query inactivity timeout'), { code: 'PROTOCOL_SEQUENCE_TIMEOUT' }),
    'timeout',
  ],
  [new Error('Connection terminated unexpectedly'), 'unreachable'],
  [new Error('Client has encountered a connection error and is not queryable'), 'unreachable'],
  [new Error('timeout exceeded when trying to connect'), 'timeout'],
  [new Error('timeout exceeded when waiting for a database connection'), 'timeout'],
  [new Error('Query read timeout'), 'timeout'],
  [new Error('driver has already been destroyed'), 'unreachable'],
  [new TypeError('Bind parameters must not contain undefined'), 'program'],
  [new Error('something never seen before'), 'unknown'],
]

const silent = pino({ level: 'silent' })

/** What a route answers for an error the database layer threw. */
const httpStatus = (err: Error) => {
  const answer = errorAnswer(toDomainError(err) as Error, silent)
  return `${answer.status}${answer.headers['retry-after'] ? ' retry-after' : ''}`
}

const expectedHttp = (fault: DbFault) =>
  FAULT_DECISIONS[fault].blame === 'database' ? '503 retry-after' : '500'

function check(err: Error, fault: DbFault, label: string) {
  assert.equal(classifyDbError(err), fault, label)
  assert.equal(isRowError(err), fault === 'row', `${label}: counts against the row`)
  assert.equal(httpStatus(err), expectedHttp(fault), `${label}: over HTTP`)
}

describe('one classification of database errors', () => {
  it('decides every fault once: only a row error counts against a win', () => {
    for (const fault of DB_FAULTS) {
      const { blame } = FAULT_DECISIONS[fault]
      assert.equal(blame === 'row', fault === 'row', fault)
    }
    assert.equal(FAULT_DECISIONS.unknown.blame, 'database', 'an unknown error is the database’s')
    const cannotWrite = DB_FAULTS.filter((f) => FAULT_DECISIONS[f].cannotWrite)
    assert.deepEqual(cannotWrite, ['read-only', 'full', 'broken'])
  })

  it('PostgreSQL, by SQLSTATE and its class', () => {
    for (const [code, fault] of POSTGRES) check(pgError(code), fault, code)
  })

  it('MySQL and MariaDB, by number, by name, and by SQLSTATE class', () => {
    for (const [code, errno, fault] of MYSQL) {
      check(mysqlError(code, errno), fault, code)
      check(Object.assign(new Error(code), { code }), fault, `${code} by name`)
      check(Object.assign(new Error(code), { errno }), fault, `${errno} by number`)
    }
    // Numbers no table lists, judged by their SQLSTATE.
    check(mysqlError('ER_SOME_NEW_DUP', 9001, '23000'), 'row', 'SQLSTATE 23000')
    check(mysqlError('ER_SOME_NEW_SYNTAX', 9002, '42000'), 'program', 'SQLSTATE 42000')
    check(mysqlError('ER_SOME_NEW_DEADLOCK', 9003, '40001'), 'conflict', 'SQLSTATE 40001')
    check(mysqlError('ER_SOME_NEW_THING', 9004), 'unknown', 'HY000')
  })

  it('SQLite, by result code (extended codes by their primary code)', () => {
    for (const [code, fault] of SQLITE) check(sqliteError(code), fault, code)
  })

  it('errors of a client library or of Node, and errors never seen', () => {
    for (const [err, fault] of CLIENT) check(err, fault, err.message)
    assert.equal(classifyDbError('not even an Error'), 'unknown')
    assert.equal(classifyDbError(undefined), 'unknown')
    assert.equal(isRowError(undefined), false)
  })

  it('throws the database’s trouble on as UnavailableError, naming the fault and the code', () => {
    const thrown = toDomainError(pgError('25006'))
    assert.ok(thrown instanceof UnavailableError)
    assert.equal(thrown.service, 'database')
    assert.equal(thrown.reason, 'read-only')
    assert.match(thrown.message, /read-only \(25006\)/)
    assert.equal(classifyDbError(thrown), 'read-only', 'classified again, the same')
    const row = pgError('23505')
    assert.equal(toDomainError(row), row, 'a row error goes on as it is')
    const program = sqliteError('SQLITE_ERROR')
    assert.equal(toDomainError(program), program, 'so does a statement’s')
  })
})
