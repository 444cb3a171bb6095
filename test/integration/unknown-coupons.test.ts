/**
 * Embedded mode, on every dialect: reads naming coupon ids that do not exist
 * (status, stats, the coupon) and issue requests for them are answered 404 without
 * a database query each (counted at the query builder, for every query this
 * process sends).
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DefaultQueryExecutor } from 'kysely'
import type { Pool } from 'undici'
import { DEFAULT_REFRESH_MS } from '../../src/service/known-coupons.js'
import { createCoupon, startApp, type TestApp } from '../helpers/app.js'
import {
  createDatabaseUrl,
  DIALECTS,
  dropDatabaseUrl,
  skipUnlessDialect,
} from '../helpers/databases.js'
import { httpPool } from '../helpers/storm.js'

const STORM = 2000
const CONCURRENCY = 400
const A_HANDFUL = 5

function countQueries() {
  const base = Object.getPrototypeOf(DefaultQueryExecutor.prototype) as {
    executeQuery: (...args: unknown[]) => unknown
  }
  const original = base.executeQuery
  const counter = {
    n: 0,
    restore: () => {
      base.executeQuery = original
    },
  }
  base.executeQuery = function (this: unknown, ...args: unknown[]) {
    counter.n++
    return original.apply(this, args)
  }
  return counter
}

for (const dialect of DIALECTS) {
  describe(`unknown coupon ids, embedded (${dialect})`, {
    skip: await skipUnlessDialect(dialect),
  }, () => {
    let url: string
    let t: TestApp
    let pool: Pool

    before(async () => {
      url = await createDatabaseUrl(dialect)
      t = await startApp({ databaseUrl: url })
      pool = httpPool(await t.listen(), CONCURRENCY)
    })

    after(async () => {
      await pool.close()
      await t.close()
      await dropDatabaseUrl(url)
    })

    it('a storm of random unknown ids costs a handful of queries, and is all 404', async (tc) => {
      const known = await createCoupon(t.app, { totalQuantity: null })
      const counter = countQueries()
      const answers: { what: string; status: number; code: unknown }[] = []
      const started = performance.now()
      try {
        let next = 0
        const lane = async () => {
          while (next < STORM) {
            const i = next++
            const id = known + 1 + Math.floor(Math.random() * 1e14)
            const path = [
              `/v1/coupons/${id}/issues/u${i}`,
              `/v1/coupons/${id}/stats`,
              `/v1/coupons/${id}`,
              `/v1/coupons/${id}/issues`,
            ][i % 4] as string
            const post = path.endsWith('/issues')
            const res = await pool.request({
              method: post ? 'POST' : 'GET',
              path,
              headers: post ? { 'content-type': 'application/json' } : {},
              body: post ? JSON.stringify({ userId: `u${i}` }) : undefined,
            })
            const body = (await res.body.json()) as { code?: unknown }
            answers.push({ what: path, status: res.statusCode, code: body.code })
          }
        }
        await Promise.all(Array.from({ length: CONCURRENCY }, lane))
      } finally {
        counter.restore()
      }
      const elapsed = performance.now() - started
      tc.diagnostic(`${STORM} unknown ids in ${Math.round(elapsed)} ms: ${counter.n} queries`)
      for (const a of answers)
        assert.deepEqual([a.status, a.code], [404, 'COUPON_NOT_FOUND'], a.what)
      const bound = Math.ceil(elapsed / DEFAULT_REFRESH_MS) + A_HANDFUL
      assert.ok(
        counter.n <= bound,
        `${counter.n} queries for ${STORM} unknown ids (bound ${bound})`,
      )
      assert.ok(counter.n <= STORM / 50, `${counter.n} queries for ${STORM} unknown ids`)

      const res = await pool.request({ method: 'GET', path: `/v1/coupons/${known}/stats` })
      assert.equal(res.statusCode, 200)
      await res.body.dump()
    })
  })
}
