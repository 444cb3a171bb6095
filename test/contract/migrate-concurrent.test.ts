/**
 * Many processes start at once on an empty database (a compose stack, a
 * deployment's pods): every one migrates it, all succeed, and none has a
 * statement fail on the way — on PostgreSQL each would be an ERROR in the
 * server's log (a duplicate key in its catalogue or in the migration lock
 * table), which pg_stat_database counts as a rolled-back transaction.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import { type Database, openDatabase } from '../../src/db/database.js'
import { migrateToLatest, migrations } from '../../src/db/migrate.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { waitFor } from '../helpers/storm.js'

const PROCESSES = 6

/** Transactions of the database that rolled back, once every session has reported. */
async function rollbacks(url: string): Promise<number> {
  const name = new URL(url).pathname.slice(1)
  const admin = new pg.Client({ connectionString: url.replace(`/${name}`, '/postgres') })
  await admin.connect()
  try {
    // The sessions report their counts as they end: wait until none is left.
    await waitFor('the sessions to end', async () => {
      const { rows } = await admin.query(
        'select count(*)::int as n from pg_stat_activity where datname = $1',
        [name],
      )
      return rows[0].n === 0
    })
    const { rows } = await admin.query(
      'select xact_rollback::int as n from pg_stat_database where datname = $1',
      [name],
    )
    return rows[0].n as number
  } finally {
    await admin.end()
  }
}

for (const dialect of DIALECTS.filter((d) => d !== 'sqlite')) {
  describe(`migrations started at once on ${dialect}`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let url = ''
    before(async () => {
      url = await createDatabaseUrl(dialect)
    })
    after(async () => {
      if (url) await dropDatabaseUrl(url)
    })

    it('all succeed, and no statement fails', async () => {
      const databases: Database[] = Array.from({ length: PROCESSES }, () =>
        openDatabase(url, dialect, { poolSize: 2 }),
      )
      try {
        await Promise.all(databases.map((d) => migrateToLatest(d.db, dialect)))
        const ran = await databases[0]?.db
          .selectFrom('kysely_migration' as never)
          .select('name' as never)
          .execute()
        assert.deepEqual(
          ran?.map((r) => (r as { name: string }).name).sort(),
          Object.keys(migrations(dialect)).sort(),
        )
      } finally {
        for (const d of databases) await d.close()
      }
      if (dialect === 'postgres') assert.equal(await rollbacks(url), 0, 'no failed statement')
    })
  })
}
