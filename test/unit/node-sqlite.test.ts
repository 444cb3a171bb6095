/**
 * node:sqlite behind Kysely: the errors SQLite raises carry their SQLite name as
 * `code`, so the error tables classify them (a unique violation, a refused row,
 * a busy database), statements with and without result rows answer as
 * Kysely expects, and rows can be read as arrays.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import {
  classifyDbError,
  FAULT_DECISIONS,
  isRowError,
  isUniqueViolation,
} from '../../src/db/errors.js'
import { openNodeSqlite, sqliteCodeName } from '../../src/db/node-sqlite.js'

function codeOf(call: () => unknown): string {
  try {
    call()
  } catch (err) {
    return String((err as { code?: unknown }).code)
  }
  assert.fail('no error')
}

describe('node:sqlite for Kysely', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-node-sqlite-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'test.sqlite')
  const db = openNodeSqlite(file)
  db.exec('pragma journal_mode = WAL')
  db.exec(
    'create table t (id integer primary key, u text not null unique, n integer check (n > 0))',
  )
  after(() => db.close())

  it('runs writes and reads with positional parameters', () => {
    const insert = db.prepare('insert into t (id, u, n) values (?, ?, ?)')
    assert.equal(insert.reader, false)
    const done = insert.run([1, 'a', 1])
    assert.equal(Number(done.changes), 1)
    assert.equal(Number(done.lastInsertRowid), 1)
    const returning = db.prepare('insert into t (id, u, n) values (?, ?, ?) returning id')
    assert.equal(returning.reader, true)
    assert.deepEqual(
      returning.all([2, 'b', 2]).map((r) => ({ ...(r as object) })),
      [{ id: 2 }],
    )
    const rows = db.prepare('select u from t where n >= ? order by id').all([1])
    assert.deepEqual(
      rows.map((r) => (r as { u: string }).u),
      ['a', 'b'],
    )
    assert.deepEqual(
      [...db.prepare('select id from t where id = ?').iterate([2])].map(
        (r) => (r as { id: number }).id,
      ),
      [2],
    )
  })

  it("reads rows as arrays in the select list's order, one statement per SQL text", () => {
    const sql = 'select n, u from t where id > ? order by id limit ?'
    assert.deepEqual(db.readArrays(sql, [0, 5]), [
      [1, 'a'],
      [2, 'b'],
    ])
    assert.deepEqual(db.readArrays(sql, [1, 5]), [[2, 'b']], 'the same statement, bound again')
    assert.deepEqual(db.readArrays(sql, [2, 5]), [])
    assert.equal(
      codeOf(() => db.readArrays('select nope from t', [])),
      'SQLITE_ERROR',
    )
  })

  it('names its errors as SQLite does, and the error tables read them', () => {
    const insert = db.prepare('insert into t (id, u, n) values (?, ?, ?)')
    const unique = codeOf(() => insert.run([10, 'a', 1]))
    assert.equal(unique, 'SQLITE_CONSTRAINT_UNIQUE')
    assert.equal(
      codeOf(() => insert.run([1, 'z', 1])),
      'SQLITE_CONSTRAINT_PRIMARYKEY',
    )
    assert.equal(
      codeOf(() => insert.run([11, null, 1])),
      'SQLITE_CONSTRAINT_NOTNULL',
    )
    assert.equal(
      codeOf(() => insert.run([12, 'c', 0])),
      'SQLITE_CONSTRAINT_CHECK',
    )
    assert.equal(
      codeOf(() => db.prepare('select * from missing')),
      'SQLITE_ERROR',
    )

    const err = (call: () => unknown) => {
      try {
        call()
      } catch (e) {
        return e
      }
      return null
    }
    assert.ok(isUniqueViolation(err(() => insert.run([10, 'a', 1]))))
    assert.ok(isRowError(err(() => insert.run([12, 'c', 0]))))
    assert.equal(FAULT_DECISIONS[classifyDbError(err(() => insert.run([12, 'c', 0])))].blame, 'row')

    // A second connection while this one holds the write lock: busy, and transient.
    const other = openNodeSqlite(file)
    other.exec('pragma busy_timeout = 0')
    db.exec('begin immediate')
    try {
      const busy = err(() => other.exec('begin immediate'))
      assert.equal((busy as { code?: unknown }).code, 'SQLITE_BUSY')
      assert.equal(FAULT_DECISIONS[classifyDbError(busy)].blame, 'database')
      assert.ok(!isRowError(busy))
    } finally {
      db.exec('rollback')
      other.close()
    }
  })

  it('names extended and unknown codes', () => {
    assert.equal(sqliteCodeName(2067), 'SQLITE_CONSTRAINT_UNIQUE')
    assert.equal(sqliteCodeName(517), 'SQLITE_BUSY_SNAPSHOT')
    assert.equal(sqliteCodeName(13), 'SQLITE_FULL')
    assert.equal(sqliteCodeName(778), 'SQLITE_IOERR_WRITE')
    assert.equal(sqliteCodeName(19 | (99 << 8)), 'SQLITE_CONSTRAINT')
    assert.equal(sqliteCodeName(999), 'SQLITE_ERROR')
  })
})
