/**
 * The database layer's one boundary for errors. Every connection, statement and
 * transaction step of a Database goes through the driver below, and every error
 * leaving it is classified once (src/db/errors.ts): the database's own trouble is
 * thrown on as UnavailableError, so no layer above (routes, services) needs to
 * know a driver's codes; a row's or a statement's fault goes on as it is, for the
 * worker and the group commit to judge.
 *
 * It also keeps the database's WriteHealth: a write refused because the database
 * cannot take writes (read-only, full, broken storage) makes readiness report the
 * database down for a while, since a `select 1` still passes then.
 */
import type {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  QueryResult,
  TransactionSettings,
} from 'kysely'
import type { UnavailableError } from '../domain/errors.js'
import { classifyDbError, FAULT_DECISIONS, toDomainError } from './errors.js'

/**
 * How long one refused write keeps readiness down: longer than the retry back-off
 * of the group commit and the stream worker (at most 2 s), so while a fault lasts
 * and wins wait, their retries keep it down; once writes pass again, it is up this
 * long after the last refusal.
 */
export const WRITE_FAULT_HOLD_MS = 5000

/** Whether the database has lately refused writes because it cannot take any. */
export class WriteHealth {
  #failure: UnavailableError | null = null
  #failedAt = 0

  failed(failure: UnavailableError): void {
    this.#failure = failure
    this.#failedAt = Date.now()
  }

  /** The last such refusal, while recent; null when writes are not known to fail. */
  get failure(): UnavailableError | null {
    return Date.now() - this.#failedAt < WRITE_FAULT_HOLD_MS ? this.#failure : null
  }
}

class ClassifiedConnection implements DatabaseConnection {
  readonly inner: DatabaseConnection
  readonly #fail: (err: unknown) => unknown

  constructor(inner: DatabaseConnection, fail: (err: unknown) => unknown) {
    this.inner = inner
    this.#fail = fail
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(query)
    } catch (err) {
      throw this.#fail(err)
    }
  }

  async *streamQuery<R>(
    query: CompiledQuery,
    chunkSize?: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield* this.inner.streamQuery<R>(query, chunkSize)
    } catch (err) {
      throw this.#fail(err)
    }
  }
}

const innerOf = (c: DatabaseConnection) => (c instanceof ClassifiedConnection ? c.inner : c)

class ClassifiedDriver implements Driver {
  readonly #inner: Driver
  readonly #health: WriteHealth
  /** one wrapper per connection, for the connection's life (drivers key state by it) */
  readonly #wrapped = new WeakMap<DatabaseConnection, ClassifiedConnection>()

  constructor(inner: Driver, health: WriteHealth) {
    this.#inner = inner
    this.#health = health
  }

  readonly #fail = (err: unknown): unknown => {
    const fault = classifyDbError(err)
    const thrown = toDomainError(err, fault)
    if (FAULT_DECISIONS[fault].cannotWrite) this.#health.failed(thrown as UnavailableError)
    return thrown
  }

  async #guard<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step()
    } catch (err) {
      throw this.#fail(err)
    }
  }

  init(): Promise<void> {
    return this.#guard(() => this.#inner.init())
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await this.#guard(() => this.#inner.acquireConnection())
    let wrapped = this.#wrapped.get(inner)
    if (!wrapped) {
      wrapped = new ClassifiedConnection(inner, this.#fail)
      this.#wrapped.set(inner, wrapped)
    }
    return wrapped
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#guard(() => this.#inner.beginTransaction(innerOf(connection), settings))
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#guard(() => this.#inner.commitTransaction(innerOf(connection)))
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#guard(() => this.#inner.rollbackTransaction(innerOf(connection)))
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(innerOf(connection))
  }

  destroy(): Promise<void> {
    return this.#inner.destroy()
  }
}

/** `inner` with every error leaving it classified (see the file's header). */
export function classifiedDialect(inner: Dialect, health: WriteHealth): Dialect {
  return {
    createAdapter: () => inner.createAdapter(),
    createDriver: () => new ClassifiedDriver(inner.createDriver(), health),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createIntrospector: (db) => inner.createIntrospector(db),
  }
}
