/**
 * One throw-away database per test suite, on each dialect the environment selects
 * (FIRSTCOME_TEST_DIALECTS, default "sqlite,postgres,mysql").
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mysql from 'mysql2/promise'
import pg from 'pg'
import type { Dialect } from '../../src/config.js'
import { insertCoupon } from '../../src/db/coupons-repo.js'
import { type Database, type Db, openDatabase } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import type { CouponRules } from '../../src/domain/coupon.js'
import { SERVICES, skipUnless } from './services.js'

export const DIALECTS: Dialect[] = (process.env.FIRSTCOME_TEST_DIALECTS ?? 'sqlite,postgres,mysql')
  .split(',')
  .map((d) => d.trim())
  .filter((d): d is Dialect => d === 'sqlite' || d === 'postgres' || d === 'mysql')

export interface TestDatabase {
  dialect: Dialect
  url: string
  database: Database
  /** Closes the connection and drops the database. */
  drop(): Promise<void>
}

const PG_ADMIN = `postgres://postgres@${SERVICES.postgres.host}:${SERVICES.postgres.port}/postgres`
const MYSQL_ADMIN = `mysql://root@${SERVICES.mysql.host}:${SERVICES.mysql.port}/`

export async function skipUnlessDialect(dialect: Dialect): Promise<string | false> {
  if (dialect === 'sqlite') return false
  return skipUnless(dialect === 'postgres' ? 'postgres' : 'mysql')
}

/** Creates an empty database and returns its URL; `dropDatabaseUrl` removes it. */
export async function createDatabaseUrl(dialect: Dialect): Promise<string> {
  const name = `fc_test_${randomBytes(5).toString('hex')}`
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'firstcome-test-'))
    return `sqlite:${join(dir, 'test.sqlite')}`
  }
  if (dialect === 'postgres') {
    const client = new pg.Client({ connectionString: PG_ADMIN })
    await client.connect()
    try {
      await client.query(`create database ${name}`)
    } finally {
      await client.end()
    }
    return `postgres://postgres@${SERVICES.postgres.host}:${SERVICES.postgres.port}/${name}`
  }
  const conn = await mysql.createConnection(MYSQL_ADMIN)
  try {
    await conn.query(`create database ${name} character set utf8mb4`)
  } finally {
    await conn.end()
  }
  return `mysql://root@${SERVICES.mysql.host}:${SERVICES.mysql.port}/${name}`
}

export async function dropDatabaseUrl(url: string): Promise<void> {
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length)
    rmSync(join(file, '..'), { recursive: true, force: true })
    return
  }
  const name = new URL(url).pathname.slice(1)
  if (!/^fc_test_[0-9a-f]+$/.test(name)) throw new Error(`refusing to drop ${name}`)
  if (url.startsWith('postgres:')) {
    const client = new pg.Client({ connectionString: PG_ADMIN })
    await client.connect()
    try {
      await client.query(`drop database if exists ${name} with (force)`)
    } finally {
      await client.end()
    }
    return
  }
  const conn = await mysql.createConnection(MYSQL_ADMIN)
  try {
    await conn.query(`drop database if exists ${name}`)
  } finally {
    await conn.end()
  }
}

export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  const url = await createDatabaseUrl(dialect)
  const database = openDatabase(url, dialect, { poolSize: 10 })
  await migrateToLatest(database.db, dialect)
  return {
    dialect,
    url,
    database,
    async drop() {
      await database.close().catch(() => {})
      await dropDatabaseUrl(url)
    },
  }
}

/** A coupon row with the rules a gate reads (title and amounts do not matter to it). */
export async function insertRulesCoupon(
  db: Db,
  rules: Omit<CouponRules, 'couponId'>,
  title = 'test',
): Promise<number> {
  const coupon = await insertCoupon(
    db,
    {
      title,
      totalQuantity: rules.totalQuantity,
      discountAmount: 0,
      minAvailableAmount: 0,
      issueStart: new Date(rules.issueStart),
      issueEnd: new Date(rules.issueEnd),
      drawAt: rules.drawAt == null ? null : new Date(rules.drawAt),
    },
    new Date(),
  )
  return coupon.id
}

/**
 * A coupon row with only the columns migration 001 made, as the first release
 * wrote it: for the tests of a later migration applied to an older database
 * (the repositories of today would name columns it does not have yet).
 */
export async function insertFirstReleaseCoupon(
  db: Db,
  rules: Omit<CouponRules, 'couponId'>,
  title = 'old',
): Promise<number> {
  const now = new Date()
  const result = await db
    .insertInto('coupons')
    .values({
      title,
      coupon_type: 'FIRST_COME_FIRST_SERVED',
      total_quantity: rules.totalQuantity,
      issued_quantity: 0,
      discount_amount: 1000,
      min_available_amount: 0,
      date_issue_start: new Date(rules.issueStart),
      date_issue_end: new Date(rules.issueEnd),
      date_created: now,
      date_updated: now,
    })
    .executeTakeFirstOrThrow()
  if (result.insertId !== undefined) return Number(result.insertId)
  const row = await db
    .selectFrom('coupons')
    .select('id')
    .where('title', '=', title)
    .orderBy('id', 'desc')
    .executeTakeFirstOrThrow()
  return Number(row.id)
}
