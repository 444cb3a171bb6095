/**
 * The admin API (create, list, patch) and the public coupon read, through
 * `app.inject()` on a whole embedded service.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { InjectOptions } from 'fastify'
import { sql } from 'kysely'
import {
  admin,
  couponBody,
  createCoupon,
  HOUR,
  ISO_UTC,
  iso,
  patchCoupon,
  requestIssue,
  startApp,
  type TestApp,
} from '../helpers/app.js'

const COUPON_KEYS = [
  'createdAt',
  'discountAmount',
  'drawAt',
  'drawCommitment',
  'id',
  'issueEnd',
  'issueStart',
  'issuedQuantity',
  'minAvailableAmount',
  'title',
  'totalQuantity',
  'type',
  'updatedAt',
]

/** A coupon of 10 open since a second ago, its draw `drawInMs` from now, closing in an hour. */
function drawCoupon(app: Parameters<typeof createCoupon>[0], drawInMs = HOUR - 1000) {
  const now = Date.now()
  return createCoupon(app, {
    totalQuantity: 10,
    issueStart: iso(now - 1000),
    drawAt: iso(now + drawInMs),
    issueEnd: iso(now + HOUR),
  })
}

describe('coupon API', () => {
  let t: TestApp
  before(async () => {
    t = await startApp()
  })
  after(async () => t?.close())

  const inject = (options: InjectOptions) => t.app.inject(options)
  const issue = (id: number, userId: string | number) => requestIssue(t.app, id, userId)
  const patch = (id: number, payload: Record<string, unknown>) => patchCoupon(t.app, id, payload)

  it('creates a coupon: 201 with every field, instants in UTC', async () => {
    const startedAt = Date.now()
    const res = await inject({
      method: 'POST',
      url: '/v1/coupons',
      headers: admin,
      payload: {
        title: '네고왕 블랙프라이데이',
        totalQuantity: 300,
        discountAmount: 100_000,
        minAvailableAmount: 110_000,
        issueStart: '2026-11-24T13:00:00+09:00',
        issueEnd: '2026-11-25T13:00:00.500+09:00',
      },
    })
    assert.equal(res.statusCode, 201)
    const c = res.json()
    assert.deepEqual(Object.keys(c).sort(), COUPON_KEYS)
    assert.equal(typeof c.id, 'number')
    assert.deepEqual(
      { ...c, id: 0, createdAt: '', updatedAt: '' },
      {
        id: 0,
        title: '네고왕 블랙프라이데이',
        type: 'FIRST_COME_FIRST_SERVED',
        totalQuantity: 300,
        issuedQuantity: 0,
        discountAmount: 100_000,
        minAvailableAmount: 110_000,
        issueStart: '2026-11-24T04:00:00.000Z',
        issueEnd: '2026-11-25T04:00:00.500Z',
        createdAt: '',
        updatedAt: '',
        drawAt: null,
        drawCommitment: null,
      },
    )
    assert.match(c.createdAt, ISO_UTC)
    assert.equal(c.updatedAt, c.createdAt)
    assert.ok(Date.parse(c.createdAt) >= startedAt && Date.parse(c.createdAt) <= Date.now())
  })

  it('accepts the optional type, an unlimited quantity and the largest quantity', async () => {
    for (const over of [
      { type: 'FIRST_COME_FIRST_SERVED' },
      { totalQuantity: null },
      { totalQuantity: 2_147_483_647, discountAmount: 0, minAvailableAmount: 2_147_483_647 },
    ]) {
      const payload = { ...couponBody(), ...over }
      const res = await inject({ method: 'POST', url: '/v1/coupons', headers: admin, payload })
      assert.equal(res.statusCode, 201, res.body)
      const c = res.json()
      assert.equal(c.type, 'FIRST_COME_FIRST_SERVED')
      assert.equal(c.totalQuantity, payload.totalQuantity)
      assert.equal(c.minAvailableAmount, payload.minAvailableAmount)
    }
  })

  it('takes a drawAt inside the window with a quantity, and commits to its seed for good', async () => {
    const body = couponBody({
      issueStart: iso(Date.now() + 60_000),
      issueEnd: iso(Date.now() + HOUR),
    })
    const start = Date.parse(body.issueStart)
    const end = Date.parse(body.issueEnd)
    for (const over of [
      { drawAt: iso(start) },
      { drawAt: iso(end + 1) },
      { drawAt: iso(start + 1000), totalQuantity: null },
      { drawAt: 'soon' },
    ]) {
      const payload = { ...body, ...over }
      const res = await inject({ method: 'POST', url: '/v1/coupons', headers: admin, payload })
      assert.equal(res.statusCode, 400, JSON.stringify(over))
      assert.equal(res.json().code, 'VALIDATION_FAILED')
    }
    const payload = { ...body, drawAt: iso(end) }
    const created = await inject({ method: 'POST', url: '/v1/coupons', headers: admin, payload })
    assert.equal(created.statusCode, 201, created.body)
    const c = created.json()
    assert.equal(c.drawAt, iso(end))
    assert.match(c.drawCommitment, /^[0-9a-f]{64}$/)
    const moved = await patch(c.id, { drawAt: iso(start + 5000) })
    assert.equal(moved.statusCode, 200, moved.body)
    assert.equal(moved.json().drawCommitment, c.drawCommitment, 'the same seed')
    const outside = await patch(c.id, { issueEnd: iso(start + 4000) })
    assert.equal(outside.statusCode, 400, 'the window must still hold drawAt')
    const removed = await patch(c.id, { drawAt: null })
    assert.equal(removed.json().drawAt, null)
    const back = await patch(c.id, { drawAt: iso(start + 6000) })
    assert.equal(back.json().drawCommitment, c.drawCommitment, 'still the same seed')
    const plain = (await inject({ method: 'GET', url: `/v1/coupons/${c.id}` })).json()
    assert.equal(plain.drawCommitment, c.drawCommitment)
    assert.equal(plain.seed, undefined)
  })

  it('an entry whose write failed is no entry: 503, not ENTERED; asked again, entered', async () => {
    const id = await drawCoupon(t.app)
    const db = t.container.database.db
    // The database refuses this user's entry (SQLite: embedded mode's default).
    await sql`create trigger refuse_entry before insert on coupon_entries
      when new.user_id = 'refused' begin select raise(abort, 'refused'); end`.execute(db)
    const status = (userId: string) =>
      inject({ method: 'GET', url: `/v1/coupons/${id}/issues/${userId}` })
    try {
      const [refused, fine] = await Promise.all([
        requestIssue(t.app, id, 'refused'),
        requestIssue(t.app, id, 'fine'),
      ])
      assert.equal(refused.statusCode, 503, refused.body)
      // One statement batch: the entry beside it failed with it.
      for (const userId of ['refused', ...(fine.statusCode === 503 ? ['fine'] : [])]) {
        const after = await status(userId)
        assert.equal(after.statusCode, 404, `${userId}: ${after.body}`)
        assert.equal(after.json().code, 'NOT_ISSUED')
      }
    } finally {
      await sql`drop trigger refuse_entry`.execute(db)
    }
    assert.equal((await requestIssue(t.app, id, 'refused')).statusCode, 202)
    assert.equal((await status('refused')).json().state, 'ENTERED')
    const rows = await db
      .selectFrom('coupon_entries')
      .select('user_id')
      .where('coupon_id', '=', id)
      .where('user_id', '=', 'refused')
      .execute()
    assert.equal(rows.length, 1)
  })

  it('drops the entries of a draw taken off its coupon', async () => {
    const end = Date.now() + HOUR
    const id = await drawCoupon(t.app)
    assert.equal((await requestIssue(t.app, id, 'entrant')).statusCode, 202)
    const status = () => inject({ method: 'GET', url: `/v1/coupons/${id}/issues/entrant` })
    assert.equal((await status()).json().state, 'ENTERED')
    assert.equal((await patch(id, { drawAt: null })).statusCode, 200)
    assert.equal((await status()).json().code, 'NOT_ISSUED')
    const rows = await t.container.database.db
      .selectFrom('coupon_entries')
      .select('user_id')
      .where('coupon_id', '=', id)
      .execute()
    assert.deepEqual(rows, [])
    assert.equal((await patch(id, { drawAt: iso(end - 1000) })).statusCode, 200)
    assert.equal((await status()).json().code, 'NOT_ISSUED')
  })

  it('refuses a draw added to a coupon with wins, and a drawAt moved once due', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 10 })
    assert.equal((await requestIssue(t.app, id, 'early-bird')).statusCode, 201)
    const end = Date.now() + HOUR
    const added = await patch(id, { drawAt: iso(end - 1000) })
    assert.equal(added.statusCode, 400, added.body)
    assert.equal(added.json().code, 'VALIDATION_FAILED')

    const due = await drawCoupon(t.app, 300)
    await new Promise((r) => setTimeout(r, 400))
    const late = await patch(due, { drawAt: iso(end - 1000) })
    assert.equal(late.statusCode, 409, late.body)
    assert.equal(late.json().code, 'DRAW_DONE')
  })

  it('keeps the end of a coupon that has ended when a change sends it back as it was', async () => {
    const end = iso(Date.now() - HOUR)
    const id = await createCoupon(t.app, { issueStart: iso(Date.now() - 2 * HOUR), issueEnd: end })
    const res = await patch(id, { title: 'renamed after the event', issueEnd: end })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.json().issueEnd, end)
    const stored = await inject({ method: 'GET', url: `/v1/coupons/${id}` })
    assert.equal(stored.json().issueEnd, end)
  })

  it('refuses a quantity change while a due draw is not recorded (it may be running)', async () => {
    // A process of its own whose runner does not draw: the draw stays due.
    const other = await startApp()
    try {
      await other.container.draws.stop()
      const due = await drawCoupon(other.app, 300)
      await new Promise((r) => setTimeout(r, 400))
      const lowered = await patchCoupon(other.app, due, { totalQuantity: 5 })
      assert.equal(lowered.statusCode, 409, lowered.body)
      assert.equal(lowered.json().code, 'DRAW_DONE')
      const renamed = await patchCoupon(other.app, due, { title: 'still open to other changes' })
      assert.equal(renamed.statusCode, 200, renamed.body)
      const coupon = await other.app.inject({ method: 'GET', url: `/v1/coupons/${due}` })
      assert.equal(coupon.json().totalQuantity, 10)
    } finally {
      await other.close()
    }
  })

  it('answers 401 UNAUTHORIZED on every admin route without the right token', async () => {
    const id = await createCoupon(t.app)
    const wrong = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: 'Bearer test-admin-token-012345678X' },
      {
        authorization: `Basic ${Buffer.from('admin:test-admin-token-0123456789').toString('base64')}`,
      },
      { authorization: 'test-admin-token-0123456789' },
    ]
    for (const headers of wrong) {
      for (const req of [
        { method: 'POST' as const, url: '/v1/coupons', payload: couponBody() },
        { method: 'GET' as const, url: '/v1/coupons' },
        { method: 'PATCH' as const, url: `/v1/coupons/${id}`, payload: { title: 'hacked' } },
      ]) {
        const res = await inject({ ...req, headers })
        assert.equal(res.statusCode, 401, `${req.method} ${req.url} ${JSON.stringify(headers)}`)
        assert.deepEqual(Object.keys(res.json()), ['code', 'message'])
        assert.equal(res.json().code, 'UNAUTHORIZED')
      }
    }
    const read = await inject({ method: 'GET', url: `/v1/coupons/${id}` })
    assert.equal(read.json().title, couponBody().title, 'the PATCH was not applied')
  })

  it('lists coupons as {items} in id order', async () => {
    const a = await createCoupon(t.app, { title: 'list-a' })
    const b = await createCoupon(t.app, { title: 'list-b' })
    const res = await inject({ method: 'GET', url: '/v1/coupons', headers: admin })
    assert.equal(res.statusCode, 200)
    const body = res.json()
    assert.deepEqual(Object.keys(body), ['items'])
    const ids: number[] = body.items.map((c: { id: number }) => c.id)
    assert.deepEqual(
      ids,
      [...ids].sort((x, y) => x - y),
    )
    const listed = body.items.filter((c: { id: number }) => c.id === a || c.id === b)
    assert.deepEqual(
      listed.map((c: { title: string }) => c.title),
      ['list-a', 'list-b'],
    )
    assert.deepEqual(Object.keys(listed[0]).sort(), COUPON_KEYS)
  })

  it('reads a coupon with remainingQuantity (null when unlimited); 404 when unknown', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 3 })
    await issue(id, 'r1')
    const res = await inject({ method: 'GET', url: `/v1/coupons/${id}` })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(Object.keys(res.json()).sort(), [...COUPON_KEYS, 'remainingQuantity'].sort())
    assert.equal(res.json().remainingQuantity, 2)
    assert.equal(res.json().issuedQuantity, 1)

    const unlimited = await createCoupon(t.app, { totalQuantity: null })
    await issue(unlimited, 'r1')
    const u = await inject({ method: 'GET', url: `/v1/coupons/${unlimited}` })
    assert.equal(u.json().remainingQuantity, null)
    assert.equal(u.json().issuedQuantity, 1)

    const missing = await inject({ method: 'GET', url: '/v1/coupons/999999' })
    assert.equal(missing.statusCode, 404)
    assert.equal(missing.json().code, 'COUPON_NOT_FOUND')
  })

  it('patches a coupon: 200 with the new fields, a later updatedAt, the rest unchanged', async () => {
    const id = await createCoupon(t.app, { title: 'before' })
    const original = (await inject({ method: 'GET', url: `/v1/coupons/${id}` })).json()
    const res = await patch(id, {
      title: 'after',
      discountAmount: 5,
      issueEnd: '2099-01-01T09:00:00+09:00',
    })
    assert.equal(res.statusCode, 200, res.body)
    const c = res.json()
    assert.deepEqual(Object.keys(c).sort(), COUPON_KEYS)
    assert.equal(c.title, 'after')
    assert.equal(c.discountAmount, 5)
    assert.equal(c.issueEnd, '2099-01-01T00:00:00.000Z')
    assert.equal(c.issueStart, original.issueStart)
    assert.equal(c.minAvailableAmount, original.minAvailableAmount)
    assert.equal(c.createdAt, original.createdAt)
    assert.ok(Date.parse(c.updatedAt) >= Date.parse(original.updatedAt))
    const read = (await inject({ method: 'GET', url: `/v1/coupons/${id}` })).json()
    assert.equal(read.title, 'after')
    assert.equal(read.updatedAt, c.updatedAt)

    const missing = await patch(999_999, { title: 'x' })
    assert.equal(missing.statusCode, 404)
    assert.equal(missing.json().code, 'COUPON_NOT_FOUND')
  })

  it('refuses a quantity below the number won (409) and allows one equal to it', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 5 })
    for (const u of ['q1', 'q2', 'q3']) assert.equal((await issue(id, u)).statusCode, 201)
    const below = await patch(id, { totalQuantity: 2 })
    assert.equal(below.statusCode, 409)
    assert.equal(below.json().code, 'QUANTITY_BELOW_ISSUED')
    const read = (await inject({ method: 'GET', url: `/v1/coupons/${id}` })).json()
    assert.equal(read.totalQuantity, 5)
    assert.equal(read.remainingQuantity, 2)

    const equal = await patch(id, { totalQuantity: 3 })
    assert.equal(equal.statusCode, 200)
    assert.equal((await issue(id, 'q4')).json().code, 'SOLD_OUT')
  })

  it('refuses a patch that leaves the end at or before the start (400), changing nothing', async () => {
    const id = await createCoupon(t.app)
    const original = (await inject({ method: 'GET', url: `/v1/coupons/${id}` })).json()
    for (const payload of [
      { issueEnd: original.issueStart },
      { issueEnd: new Date(Date.parse(original.issueStart) - 1).toISOString() },
      { issueStart: original.issueEnd },
      { issueStart: '2030-01-01T00:00:00Z', issueEnd: '2029-12-31T23:59:59Z' },
    ]) {
      const res = await patch(id, payload)
      assert.equal(res.statusCode, 400, JSON.stringify(payload))
      assert.equal(res.json().code, 'VALIDATION_FAILED')
    }
    const read = (await inject({ method: 'GET', url: `/v1/coupons/${id}` })).json()
    assert.deepEqual(read, original)
    assert.equal((await issue(id, 'still-open')).statusCode, 201, 'the gate kept the window')
  })

  it('refuses unknown and read-only fields in a patch (400)', async () => {
    const id = await createCoupon(t.app)
    for (const payload of [
      { id: 99 },
      { issuedQuantity: 0 },
      { type: 'FIRST_COME_FIRST_SERVED' },
      { foo: 1 },
    ]) {
      const res = await patch(id, payload)
      assert.equal(res.statusCode, 400, JSON.stringify(payload))
      assert.equal(res.json().code, 'VALIDATION_FAILED')
    }
  })

  it('applies a raised quantity to the next issue request', async () => {
    const id = await createCoupon(t.app, { totalQuantity: 1 })
    assert.equal((await issue(id, 'first')).statusCode, 201)
    assert.equal((await issue(id, 'second')).json().code, 'SOLD_OUT')
    assert.equal((await patch(id, { totalQuantity: 2 })).statusCode, 200)
    const res = await issue(id, 'second')
    assert.equal(res.statusCode, 201)
    assert.equal(res.json().rank, 2)
    assert.equal((await issue(id, 'third')).json().code, 'SOLD_OUT')
    assert.equal((await patch(id, { totalQuantity: null })).statusCode, 200)
    assert.equal((await issue(id, 'third')).statusCode, 201)
  })

  it('an end moved into the past closes the coupon at once, and it stays closed', async () => {
    // The end is recorded as the moment the gate took it; applied before that
    // moment had passed, it would reopen the coupon until then.
    for (let round = 0; round < 50; round++) {
      const id = await createCoupon(t.app, {
        issueStart: iso(Date.now() - 2 * HOUR),
        issueEnd: iso(Date.now() + HOUR),
      })
      const moved = await patch(id, { issueEnd: iso(Date.now() - HOUR) })
      assert.equal(moved.statusCode, 200, moved.body)
      const late = await issue(id, `late-${round}`)
      assert.equal(late.json().code, 'ISSUE_ENDED', `round ${round}: ${late.body}`)
    }
  })

  it('applies a moved window to the next issue request', async () => {
    const id = await createCoupon(t.app)
    const now = Date.now()
    assert.equal(
      (await patch(id, { issueStart: iso(now - 2 * HOUR), issueEnd: iso(now - HOUR) })).statusCode,
      200,
    )
    assert.equal((await issue(id, 'w1')).json().code, 'ISSUE_ENDED')
    assert.equal(
      (await patch(id, { issueStart: iso(now + HOUR), issueEnd: iso(now + 2 * HOUR) })).statusCode,
      200,
    )
    assert.equal((await issue(id, 'w1')).json().code, 'ISSUE_NOT_STARTED')
    assert.equal((await patch(id, { issueStart: iso(now - HOUR) })).statusCode, 200)
    assert.equal((await issue(id, 'w1')).statusCode, 201)
  })
})
