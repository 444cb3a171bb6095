/**
 * The invariants of SPEC.md §2 as the bench can see them after a run, as
 * pass/fail lines. Pure: the facts are gathered elsewhere (stats endpoint,
 * database, client counts), so every rule here is unit tested on plain numbers.
 */
import type { DbFacts } from './db-check.js'
import type { CouponStats } from './target-api.js'

export interface InvariantFacts {
  /** the coupon's totalQuantity; null = unlimited */
  quantity: number | null
  /** gate wins before the run (non-zero only for --coupon) */
  wonBefore: number
  /** stats once drained (or when the bench gave up waiting) */
  after: CouponStats
  drained: boolean
  drainMs: number
  drainTimeoutMs: number
  /** distinct users in the requests sent, and in those that got any answer */
  distinctSent: number
  distinctAnswered: number
  /** wins the client was told about (201, or compat isSuccess) */
  winsAnswered: number
  /** requests that got no answer (timeouts, connection errors): a win may hide there */
  unanswered: number
  /**
   * answers the scenario does not expect (a 503, a 429…): the gate may not have
   * judged that user, or may have granted a win whose answer was lost (a 503
   * after a failed commit keeps the win, by design)
   */
  unexpected: number
  /** null when the bench does not know the database */
  db: DbFacts | null
}

export interface InvariantLine {
  name: string
  /** null = not checked (the reason is in detail) */
  ok: boolean | null
  detail: string
}

const n = (v: number) => v.toLocaleString('en-US')

export function checkInvariants(f: InvariantFacts): InvariantLine[] {
  const lines: InvariantLine[] = []
  const q = f.quantity ?? Number.POSITIVE_INFINITY
  const won = f.after.won
  const newWins = won - f.wonBefore

  lines.push(
    f.quantity === null
      ? { name: 'no oversell', ok: null, detail: 'unlimited coupon' }
      : {
          name: 'no oversell',
          ok: won <= f.quantity,
          detail: `${n(won)} won of ${n(f.quantity)}`,
        },
  )

  // Every distinct user answered with an expected outcome was judged by the gate;
  // each unexpected answer may hide one user it never judged, and a user whose
  // requests all went unanswered may or may not have been. Users that won before
  // this run may overlap with this run's users, hence the loose bounds then.
  const lo = Math.min(q, Math.max(f.wonBefore, f.distinctAnswered - f.unexpected))
  const hi = Math.min(q, f.wonBefore + f.distinctSent)
  const expected = lo === hi ? n(lo) : `${n(lo)}..${n(hi)}`
  lines.push({
    name: 'wins = min(quantity, distinct users who tried)',
    ok: won >= lo && won <= hi,
    detail: `${n(won)} won; expected ${expected} (${f.quantity === null ? 'unlimited' : n(f.quantity)}, ${n(f.distinctAnswered)} distinct users answered${f.distinctSent !== f.distinctAnswered ? `, ${n(f.distinctSent)} sent` : ''})`,
  })

  lines.push({
    name: 'every win answered was granted',
    ok: f.winsAnswered <= newWins && newWins <= f.winsAnswered + f.unanswered + f.unexpected,
    detail: `${n(f.winsAnswered)} answered as wins, ${n(newWins)} granted by the gate${newWins > f.winsAnswered ? ` (${n(newWins - f.winsAnswered)} not answered as wins, within ${n(f.unanswered + f.unexpected)} requests without a definite answer)` : ''}`,
  })

  lines.push({
    name: 'queue drained',
    ok: f.drained,
    detail: f.drained
      ? `queued = 0 ${f.drainMs} ms after the load ended`
      : `${n(f.after.queued)} still queued after ${f.drainTimeoutMs / 1000} s`,
  })

  lines.push({
    name: 'gate = database',
    ok: f.after.won === f.after.persisted,
    detail: `won ${n(f.after.won)}, persisted ${n(f.after.persisted)}`,
  })

  if (!f.db) {
    const detail = 'database not known to the bench (pass --database-url)'
    lines.push({ name: 'no duplicate rows', ok: null, detail })
    return lines
  }
  const db = f.db
  lines.push({
    name: 'no duplicate rows',
    ok: db.duplicates.length === 0,
    detail:
      db.duplicates.length === 0
        ? `${n(db.rows)} rows, one per user`
        : `users with several rows: ${db.duplicates.join(', ')}`,
  })
  lines.push({
    name: 'ranks are 1..won, each once',
    ok:
      db.rows === 0 || (db.distinctRanks === db.rows && db.minRank === 1 && db.maxRank === db.rows),
    detail:
      db.rows === 0
        ? 'no rows'
        : `${n(db.distinctRanks)} distinct ranks over ${n(db.rows)} rows, ${db.minRank}..${db.maxRank}`,
  })
  lines.push({
    name: 'every win answered has its row',
    ok: db.winnersMissing === 0,
    detail:
      db.winnersMissing === 0
        ? `${n(db.winnersChecked)} winners looked up${f.winsAnswered > db.winnersChecked ? ` (of ${n(f.winsAnswered)})` : ''}`
        : `${n(db.winnersMissing)} of ${n(db.winnersChecked)} winners have no row: ${db.missingSample.join(', ')}`,
  })
  return lines
}

export function allPass(lines: readonly InvariantLine[]): boolean {
  return lines.every((l) => l.ok !== false)
}
