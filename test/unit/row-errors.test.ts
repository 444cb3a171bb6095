import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { isRowError } from '../../src/db/row-errors.js'

/** An error shaped as the drivers throw them: a message, a code, maybe an errno. */
function dbError(code: string | undefined, errno?: number, message = 'refused'): Error {
  return Object.assign(new Error(message), { code, errno })
}

describe('isRowError: only what a row causes counts against it', () => {
  it('PostgreSQL: SQLSTATE classes 22 and 23 only', () => {
    for (const code of ['23505', '23503', '23502', '23514', '22001', '22003', '22P02', '22007'])
      assert.equal(isRowError(dbError(code)), true, code)
    for (const code of [
      '25006', // read-only transaction
      '53100', // disk full
      '53200', // out of memory
      '53300', // too many connections
      '57014', // statement timeout
      '57P01', // admin shutdown
      '57P03', // cannot connect now
      '08006', // connection failure
      '40001', // serialization failure
      '40P01', // deadlock
      '55P03', // lock not available
      '42P01', // undefined table: a deployment problem, not a row
      'XX000', // internal error
    ])
      assert.equal(isRowError(dbError(code)), false, code)
  })

  it('MySQL/MariaDB: integrity and data errors, by name or by number', () => {
    for (const [code, errno] of [
      ['ER_DUP_ENTRY', 1062],
      ['ER_NO_REFERENCED_ROW_2', 1452],
      ['ER_NO_REFERENCED_ROW', 1216],
      ['ER_BAD_NULL_ERROR', 1048],
      ['ER_DATA_TOO_LONG', 1406],
      ['ER_TRUNCATED_WRONG_VALUE', 1292],
      ['ER_TRUNCATED_WRONG_VALUE_FOR_FIELD', 1366],
      ['ER_WARN_DATA_OUT_OF_RANGE', 1264],
    ] as const) {
      assert.equal(isRowError(dbError(code, errno)), true, code)
      assert.equal(isRowError(dbError(code)), true, `${code} by name`)
      assert.equal(isRowError(dbError(undefined, errno)), true, `${code} by number`)
    }
    for (const [code, errno] of [
      ['ER_OPTION_PREVENTS_STATEMENT', 1290], // --read-only
      ['ER_SERVER_SHUTDOWN', 1053],
      ['ER_CON_COUNT_ERROR', 1040],
      ['ER_LOCK_WAIT_TIMEOUT', 1205],
      ['ER_LOCK_DEADLOCK', 1213],
      ['ER_QUERY_INTERRUPTED', 1317],
      ['ER_RECORD_FILE_FULL', 1114],
      ['ER_DISK_FULL', 1021],
      ['ER_CANT_LOCK', 1015],
      ['PROTOCOL_CONNECTION_LOST', undefined],
    ] as const)
      assert.equal(isRowError(dbError(code, errno)), false, code)
  })

  it('SQLite: constraints, type mismatch, too big', () => {
    for (const code of [
      'SQLITE_CONSTRAINT',
      'SQLITE_CONSTRAINT_UNIQUE',
      'SQLITE_CONSTRAINT_FOREIGNKEY',
      'SQLITE_CONSTRAINT_NOTNULL',
      'SQLITE_CONSTRAINT_CHECK',
      'SQLITE_MISMATCH',
      'SQLITE_TOOBIG',
    ])
      assert.equal(isRowError(dbError(code)), true, code)
    for (const code of [
      'SQLITE_BUSY',
      'SQLITE_LOCKED',
      'SQLITE_FULL',
      'SQLITE_IOERR',
      'SQLITE_READONLY',
    ])
      assert.equal(isRowError(dbError(code)), false, code)
  })

  it('anything else is the database’s: system errors, pool timeouts, unknown errors', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EMFILE', 'ETIMEDOUT', 'EPIPE'])
      assert.equal(isRowError(dbError(code, -24)), false, code)
    assert.equal(isRowError(new Error('timeout exceeded when trying to connect')), false)
    assert.equal(isRowError(new Error('Connection terminated unexpectedly')), false)
    assert.equal(isRowError(new Error('something never seen before')), false)
    assert.equal(isRowError('not even an Error'), false)
    assert.equal(isRowError(undefined), false)
  })
})
