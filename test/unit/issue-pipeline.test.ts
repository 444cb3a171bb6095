/**
 * The issue pipeline's steps that need no service: closing and admission before
 * the body, and decode (the routes' schemas, compiled) refusing every body that
 * is not the route's shape, so that Fastify's validator answers it. The rest of
 * the steps are held by the parity suite (test/integration/issue-fast-lane*.ts),
 * through all three adapters.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  type IssueInput,
  IssuePipeline,
  type IssuePipelineOptions,
} from '../../src/http/issue-pipeline.js'
import { Overload } from '../../src/http/overload.js'
import { memoryIssueLimits } from '../../src/limits/issue-limits.js'

/** A pipeline that never gets as far as the service (it has none). */
function pipeline(options: Partial<IssuePipelineOptions> = {}): IssuePipeline {
  return new IssuePipeline({
    verifyUser: null,
    limits: memoryIssueLimits({ perIp: null, perUser: null }),
    overload: new Overload(0),
    closing: () => false,
    ...options,
  } as IssuePipelineOptions)
}

const input = (compat: boolean, body: unknown): IssueInput => ({
  compat,
  couponId: compat ? 0 : 1,
  body,
  headers: {},
  ip: '127.0.0.1',
  key: undefined,
  started: performance.now(),
  log: undefined as never,
})

describe('issue pipeline', () => {
  it('refuses while closing before the body is read, each route in its own shape', () => {
    const closing = pipeline({ closing: () => true })
    const native = closing.head(false)
    const compat = closing.head(true)
    assert.equal(native?.status, 503)
    assert.deepEqual(JSON.parse(String(native?.body)), {
      code: 'UNAVAILABLE',
      message: 'The server is shutting down; retry shortly.',
    })
    assert.equal(compat?.status, 503)
    assert.deepEqual(JSON.parse(String(compat?.body)), {
      isSuccess: false,
      comment: '쿠폰 발급 요청에 실패했습니다',
    })
    for (const a of [native, compat]) assert.equal(a?.headers?.['retry-after'], '1')
    assert.equal(pipeline().head(false), null, 'open: read the body')
  })

  it("leaves every body that is not the route's shape to Fastify's validator", () => {
    const p = pipeline()
    const notIssue = [
      null,
      [],
      'x',
      {},
      { userId: 0 },
      { userId: 1.5 },
      { userId: Number.MAX_SAFE_INTEGER + 1 },
      { userId: 'has space' },
      { userId: 'L'.repeat(65) },
      { userId: null },
      { userId: 1, extra: true },
      JSON.parse('{"__proto__": {"admin": true}, "userId": 1}'),
    ]
    for (const body of notIssue)
      assert.equal(p.handle(input(false, body)), null, JSON.stringify(body))
    const notCompat = [
      {},
      { userId: 1 },
      { userId: '1', couponId: 1 },
      { userId: 1, couponId: 0 },
      { userId: 1, couponId: 1, x: 1 },
    ]
    for (const body of notCompat)
      assert.equal(p.handle(input(true, body)), null, JSON.stringify(body))
  })
})
