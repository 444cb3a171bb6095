/**
 * A database that does not exist yet: the bench creates its own (once, however
 * often asked), and a server started on one fails naming the command that
 * creates it.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import type { Dialect } from '../../src/config.js'
import {
  createDatabaseCommand,
  createDatabaseIfMissing,
  missingDatabaseHint,
} from '../../src/db/create-database.js'
import { openDatabase } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { dropDatabaseUrl, skipUnlessDialect } from '../helpers/databases.js'
import { SERVICES } from '../helpers/services.js'

function missingUrl(dialect: Exclude<Dialect, 'sqlite'>): string {
  const name = `fc_test_${randomBytes(5).toString('hex')}`
  return dialect === 'postgres'
    ? `postgres://postgres@${SERVICES.postgres.host}:${SERVICES.postgres.port}/${name}`
    : `mysql://root@${SERVICES.mysql.host}:${SERVICES.mysql.port}/${name}`
}

for (const dialect of ['postgres', 'mysql'] as const) {
  describe(`a database that does not exist (${dialect})`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    const url = missingUrl(dialect)
    after(() => dropDatabaseUrl(url))

    it('fails to open naming the command that creates it', async () => {
      const database = openDatabase(url, dialect, { poolSize: 1 })
      try {
        const err = await migrateToLatest(database.db, dialect).then(
          () => null,
          (e: unknown) => e,
        )
        assert.ok(err, 'migrating a database that does not exist fails')
        const hint = missingDatabaseHint(err, url, dialect)
        assert.equal(hint, `create the database first: ${createDatabaseCommand(url, dialect)}`)
        assert.match(hint ?? '', new RegExp(new URL(url).pathname.slice(1)))
        // Any other failure gets no such hint.
        assert.equal(missingDatabaseHint(new Error('connection refused'), url, dialect), null)
      } finally {
        await database.close()
      }
    })

    it('is created once, then used as it is', async () => {
      assert.equal(await createDatabaseIfMissing(url, dialect), true)
      assert.equal(await createDatabaseIfMissing(url, dialect), false)
      const database = openDatabase(url, dialect, { poolSize: 1 })
      try {
        await migrateToLatest(database.db, dialect)
        await database.ping()
      } finally {
        await database.close()
      }
    })
  })
}
