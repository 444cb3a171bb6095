/**
 * Node's built-in SQLite (node:sqlite) as the database Kysely's SqliteDialect
 * drives. Kysely ships no dialect for it and none is maintained on npm, but its
 * SqliteDialect takes any object shaped like its SqliteDatabase interface; the
 * differences from that shape are few and are handled here:
 *
 * - parameters are passed spread, not as one array;
 * - a statement returns rows when it has result columns (`reader`);
 * - an error carries SQLite's extended result code as a number (`errcode`), and
 *   is given its SQLite name as `code` (`SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_BUSY`,
 *   `SQLITE_FULL`, …), so the error table (db/errors.ts) reads
 *   it as they read every dialect's code.
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import type { SqliteDatabase, SqliteStatement } from 'kysely'

/** SQLite's primary result codes (https://www.sqlite.org/rescode.html). */
const PRIMARY: Readonly<Record<number, string>> = {
  1: 'ERROR',
  2: 'INTERNAL',
  3: 'PERM',
  4: 'ABORT',
  5: 'BUSY',
  6: 'LOCKED',
  7: 'NOMEM',
  8: 'READONLY',
  9: 'INTERRUPT',
  10: 'IOERR',
  11: 'CORRUPT',
  12: 'NOTFOUND',
  13: 'FULL',
  14: 'CANTOPEN',
  15: 'PROTOCOL',
  16: 'EMPTY',
  17: 'SCHEMA',
  18: 'TOOBIG',
  19: 'CONSTRAINT',
  20: 'MISMATCH',
  21: 'MISUSE',
  22: 'NOLFS',
  23: 'AUTH',
  24: 'FORMAT',
  25: 'RANGE',
  26: 'NOTADB',
  27: 'NOTICE',
  28: 'WARNING',
}

/**
 * The extended codes' suffixes, by the number above the primary code's byte
 * (extended = primary | n << 8), from the same page. A code not listed is named
 * by its primary code.
 */
const EXTENDED: Readonly<Record<string, readonly string[]>> = {
  ABORT: ['', 'ROLLBACK'],
  BUSY: ['', 'RECOVERY', 'SNAPSHOT', 'TIMEOUT'],
  CANTOPEN: ['', 'NOTEMPDIR', 'ISDIR', 'FULLPATH', 'CONVPATH', 'DIRTYWAL', 'SYMLINK'],
  CORRUPT: ['', 'VTAB', 'SEQUENCE', 'INDEX'],
  IOERR: [
    '',
    'READ',
    'SHORT_READ',
    'WRITE',
    'FSYNC',
    'DIR_FSYNC',
    'TRUNCATE',
    'FSTAT',
    'UNLOCK',
    'RDLOCK',
    'DELETE',
    'BLOCKED',
    'NOMEM',
    'ACCESS',
    'CHECKRESERVEDLOCK',
    'LOCK',
    'CLOSE',
    'DIR_CLOSE',
    'SHMOPEN',
    'SHMSIZE',
    'SHMLOCK',
    'SHMMAP',
    'SEEK',
    'DELETE_NOENT',
    'MMAP',
    'GETTEMPPATH',
    'CONVPATH',
    'VNODE',
    'AUTH',
    'BEGIN_ATOMIC',
    'COMMIT_ATOMIC',
    'ROLLBACK_ATOMIC',
    'DATA',
    'CORRUPTFS',
    'IN_PAGE',
  ],
  LOCKED: ['', 'SHAREDCACHE', 'VTAB'],
  READONLY: ['', 'RECOVERY', 'CANTLOCK', 'ROLLBACK', 'DBMOVED', 'CANTINIT', 'DIRECTORY'],
  CONSTRAINT: [
    '',
    'CHECK',
    'COMMITHOOK',
    'FOREIGNKEY',
    'FUNCTION',
    'NOTNULL',
    'PRIMARYKEY',
    'TRIGGER',
    'UNIQUE',
    'VTAB',
    'ROWID',
    'PINNED',
    'DATATYPE',
  ],
}

/** `SQLITE_CONSTRAINT_UNIQUE` for 2067, as better-sqlite3 and SQLite's headers name it. */
export function sqliteCodeName(errcode: number): string {
  const primary = PRIMARY[errcode & 0xff] ?? 'ERROR'
  const suffix = EXTENDED[primary]?.[errcode >> 8]
  return suffix ? `SQLITE_${primary}_${suffix}` : `SQLITE_${primary}`
}

function named<T>(call: () => T): T {
  try {
    return call()
  } catch (err) {
    const e = err as { code?: unknown; errcode?: unknown }
    if (typeof e?.errcode === 'number' && e.code === 'ERR_SQLITE_ERROR') {
      e.code = sqliteCodeName(e.errcode)
    }
    throw err
  }
}

class Statement implements SqliteStatement {
  readonly reader: boolean
  readonly #stmt: StatementSync

  constructor(stmt: StatementSync) {
    this.#stmt = stmt
    this.reader = stmt.columns().length > 0
  }

  all(parameters: ReadonlyArray<unknown>): unknown[] {
    return named(() => this.#stmt.all(...(parameters as SQLInputValue[])))
  }

  run(parameters: ReadonlyArray<unknown>): {
    changes: number | bigint
    lastInsertRowid: number | bigint
  } {
    const { changes, lastInsertRowid } = named(() =>
      this.#stmt.run(...(parameters as SQLInputValue[])),
    )
    return { changes, lastInsertRowid }
  }

  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    return named(() => this.#stmt.iterate(...(parameters as SQLInputValue[])))
  }
}

export interface NodeSqliteDatabase extends SqliteDatabase {
  /** runs SQL without parameters or results (pragmas) */
  exec(sql: string): void
  /**
   * Runs a query and returns its rows as arrays of column values, in the
   * select list's order; the statement is prepared once per SQL text. Rows as
   * objects (what Kysely's driver reads) are built by node:sqlite in a way V8
   * keeps past its young generation, so a large read fills the old generation
   * until the next full collection; arrays are collected young, as the values
   * made from them are.
   */
  readArrays(sql: string, parameters: readonly unknown[]): unknown[][]
  /** whether a transaction is open (SQLite ends one by itself on some errors) */
  inTransaction(): boolean
}

/** Opens (and creates) the SQLite file at `path`, or `:memory:`. */
export function openNodeSqlite(path: string): NodeSqliteDatabase {
  const db = named(() => new DatabaseSync(path))
  const arrayStatements = new Map<string, StatementSync>()
  return {
    close: () => db.close(),
    prepare: (sql: string) => named(() => new Statement(db.prepare(sql))),
    exec: (sql: string) => named(() => db.exec(sql)),
    readArrays(sql, parameters) {
      let stmt = arrayStatements.get(sql)
      if (!stmt) {
        stmt = named(() => db.prepare(sql))
        stmt.setReturnArrays(true)
        arrayStatements.set(sql, stmt)
      }
      const prepared = stmt
      return named(() => prepared.all(...(parameters as SQLInputValue[]))) as unknown as unknown[][]
    },
    inTransaction: () => db.isTransaction,
  }
}
