/**
 * The draw scenario around its load: the coupon is created with its drawAt
 * well after the load's end, so every entry of the load falls before it; once
 * the load has ended drawAt is moved to a second from now (a PATCH, allowed
 * until the draw is due), the bench waits for the draw's record, reads the
 * public record and the entrant list (pseudonyms, and with the admin token the
 * user ids in the same order), and checks the draw's invariants. The checks
 * themselves (checkDrawInvariants) are pure, unit tested on plain facts.
 */
import type { InvariantLine } from './invariants.js'
import { type DrawRecord, parseDrawRecord, verifyDraw } from './service-draw.js'

/** drawAt is first set this long after the load's end plus its timeout. */
const DRAW_AT_SLACK_MS = 60_000
/** …and moved to this long from now once the load has ended. */
const DRAW_AT_SOON_MS = 1000

async function call(url: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(url, init)
  if (!res.ok) {
    const text = await res.text()
    throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${text.slice(0, 300)}`)
  }
  return res
}

const adminHeaders = (token: string) => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
})

/** A coupon of `quantity` whose entries are open now and whose draw is after the load. */
export async function createDrawCoupon(
  baseUrl: string,
  adminToken: string,
  quantity: number,
  loadMs: number,
): Promise<{ id: number; drawAt: number }> {
  const now = Date.now()
  const drawAt = now + loadMs + DRAW_AT_SLACK_MS
  const res = await call(`${baseUrl}/v1/coupons`, {
    method: 'POST',
    headers: adminHeaders(adminToken),
    body: JSON.stringify({
      title: `bench: draw of ${quantity}`,
      totalQuantity: quantity,
      discountAmount: 1000,
      minAvailableAmount: 0,
      issueStart: new Date(now - 60_000).toISOString(),
      drawAt: new Date(drawAt).toISOString(),
      issueEnd: new Date(drawAt + 3_600_000).toISOString(),
    }),
  })
  const coupon = (await res.json()) as { id: number }
  return { id: coupon.id, drawAt }
}

/** The load has ended: the draw is due in a second. Answers the new drawAt. */
export async function drawSoon(baseUrl: string, adminToken: string, couponId: number) {
  const drawAt = Date.now() + DRAW_AT_SOON_MS
  await call(`${baseUrl}/v1/coupons/${couponId}`, {
    method: 'PATCH',
    headers: adminHeaders(adminToken),
    body: JSON.stringify({ drawAt: new Date(drawAt).toISOString() }),
  })
  return drawAt
}

export interface ServedDraw {
  record: DrawRecord
  /** the public list's body, as served */
  entrantList: string
  /** its lines: the entrants' pseudonyms, sorted */
  pseudonyms: string[]
  /** the admin's list: the same entrants' user ids, in the same order */
  userIds: string[]
  /** from drawAt to the first answer 200 of the record (polled every 20 ms) */
  recordedAfterMs: number
}

const lines = (body: string) => (body === '' ? [] : body.slice(0, -1).split('\n'))

/** Waits for the draw's record, then reads it and both entrant lists; null: not by the timeout. */
export async function awaitDraw(
  baseUrl: string,
  adminToken: string,
  couponId: number,
  drawAt: number,
  timeoutMs: number,
): Promise<ServedDraw | null> {
  const url = `${baseUrl}/v1/coupons/${couponId}/draw`
  let body: unknown = null
  for (;;) {
    const res = await fetch(url)
    if (res.status === 200) {
      body = await res.json()
      break
    }
    await res.body?.cancel()
    if (res.status !== 404) throw new Error(`GET ${url}: ${res.status}`)
    if (Date.now() - drawAt > timeoutMs) return null
    await new Promise((r) => setTimeout(r, 20))
  }
  const recordedAfterMs = Date.now() - drawAt
  const parsed = parseDrawRecord(body)
  if (!parsed.ok) throw new Error(`GET ${url}: not a draw record: ${parsed.problems.join('; ')}`)
  const entrantList = await (await call(`${url}/entrants`)).text()
  const plain = await (
    await call(`${url}/entrants?as=userIds`, { headers: adminHeaders(adminToken) })
  ).text()
  return {
    record: parsed.record,
    entrantList,
    pseudonyms: lines(entrantList),
    userIds: lines(plain),
    recordedAfterMs,
  }
}

export interface DrawFacts {
  /** the coupon's quantity */
  quantity: number
  /** null: not recorded within the wait */
  draw: ServedDraw | null
  waitedMs: number
  /** distinct users the load was answered 202 */
  distinct202: number
  /** requests without a definite answer (timeouts, connection errors, unexpected answers) */
  uncertain: number
  /** users answered 202, as the client processes reported them (maybe not all) */
  reported202: readonly number[]
  /** the coupon's stats once drained */
  won: number
  persisted: number
  drained: boolean
  /** the database's rows of the coupon, user → rank; null: the database is not known */
  rows: ReadonlyMap<string, number> | null
}

const n = (v: number) => v.toLocaleString('en-US')

export function checkDrawInvariants(f: DrawFacts): InvariantLine[] {
  const d = f.draw
  if (!d) {
    return [
      {
        name: 'the draw ran',
        ok: false,
        detail: `no record ${(f.waitedMs / 1000).toFixed(1)} s after drawAt`,
      },
    ]
  }
  const lines: InvariantLine[] = []
  const { record } = d
  lines.push({
    name: 'the draw ran',
    ok: true,
    detail: `recorded ${(d.recordedAfterMs / 1000).toFixed(2)} s after drawAt`,
  })
  const verification = verifyDraw({ record, entrantList: d.entrantList })
  lines.push({
    name: 'the draw verifies (verify-draw)',
    ok: verification.ok,
    detail: verification.ok
      ? 'the winners are the documented shuffle of the entrant list'
      : verification.checks
          .filter((c) => !c.ok)
          .map((c) => `${c.name}: ${c.detail}`)
          .join('; '),
  })
  const entrants = record.entrants
  const hi = f.distinct202 + f.uncertain
  lines.push({
    name: 'entrants = distinct users answered 202',
    ok: entrants >= f.distinct202 && entrants <= hi && d.userIds.length === entrants,
    detail: `${n(entrants)} entrants, ${n(f.distinct202)} distinct users answered 202${f.uncertain > 0 ? ` (up to ${n(hi)} with ${n(f.uncertain)} requests without a definite answer)` : ''}; lists of ${n(d.pseudonyms.length)} pseudonyms, ${n(d.userIds.length)} user ids`,
  })
  const entered = new Set(d.userIds)
  const missing = [...new Set(f.reported202.map(String))].filter((u) => !entered.has(u))
  lines.push({
    name: 'every user answered 202 is an entrant',
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `${n(new Set(f.reported202).size)} users answered 202 looked up`
        : `${n(missing.length)} users answered 202 are not in the entrant list: ${missing.slice(0, 10).join(', ')}`,
  })
  const expected = Math.min(f.quantity, entrants)
  lines.push({
    name: 'winners = min(quantity, entrants)',
    ok: record.winners.length === expected,
    detail: `${n(record.winners.length)} winners; quantity ${n(f.quantity)}, ${n(entrants)} entrants`,
  })
  // The winners' user ids, through the two lists' common order.
  const indexOf = new Map(d.pseudonyms.map((p, i) => [p, i]))
  const winners: string[] = []
  const strangers: string[] = []
  for (const p of record.winners) {
    const i = indexOf.get(p)
    if (i === undefined) strangers.push(p)
    else winners.push(d.userIds[i] as string)
  }
  lines.push({
    name: 'winners ⊆ entrants',
    ok: strangers.length === 0 && new Set(winners).size === winners.length,
    detail:
      strangers.length === 0
        ? `${n(winners.length)} winners, each an entrant, each once`
        : `${n(strangers.length)} winners are not in the entrant list: ${strangers.slice(0, 3).join(', ')}`,
  })
  lines.push({
    name: 'queue drained, gate = database',
    ok: f.drained && f.won === expected && f.persisted === expected,
    detail: `won ${n(f.won)}, persisted ${n(f.persisted)}${f.drained ? '' : ' (not drained)'}`,
  })
  if (!f.rows) {
    lines.push({
      name: 'ranks 1..n persisted, each the record’s winner',
      ok: null,
      detail: 'database not known to the bench (pass --database-url)',
    })
    return lines
  }
  const wrong: string[] = []
  for (const [r, userId] of winners.entries()) {
    const rank = f.rows.get(userId)
    if (rank !== r + 1) wrong.push(`${userId}: rank ${rank ?? 'none'}, drawn ${r + 1}`)
  }
  lines.push({
    name: 'ranks 1..n persisted, each the record’s winner',
    ok: wrong.length === 0 && f.rows.size === winners.length,
    detail:
      wrong.length === 0 && f.rows.size === winners.length
        ? `${n(f.rows.size)} rows, rank r the record's winner r`
        : `${n(f.rows.size)} rows for ${n(winners.length)} winners; ${wrong.slice(0, 5).join('; ')}`,
  })
  return lines
}
