/**
 * Checking a draw from its two public answers, the record and the entrant list,
 * as `firstcome verify-draw` does. Pure (no I/O), so every check is tested
 * without a server; docs/draw.md, "Checking a draw".
 */
import { createHash } from 'node:crypto'
import type { DrawRecord } from './record.js'
import {
  commitmentOf,
  DRAW_ALGORITHM,
  isHex64,
  pseudonymOf,
  seedFromHex,
  winnersOf,
} from './shuffle.js'

export type CheckName =
  | 'algorithm'
  | 'commitment'
  | 'published commitment'
  | 'entrant list'
  | 'count'
  | 'digest'
  | 'winners'

export interface DrawCheck {
  name: CheckName
  ok: boolean
  detail: string
}

/** One user's part in the draw, found through their pseudonym. */
export interface UserFate {
  userId: string
  pseudonym: string
  entered: boolean
  /** 1-based; null when not drawn */
  rank: number | null
}

export interface DrawVerification {
  /** every check passed */
  ok: boolean
  checks: DrawCheck[]
  user: UserFate | null
}

export interface VerifyInput {
  record: DrawRecord
  /** the body of GET …/draw/entrants, as served */
  entrantList: string
  /** the commitment published before the event, compared with the record's */
  publishedCommitment?: string | undefined
  userId?: string | undefined
}

/** The list's lines, or the first thing wrong with them. */
function readList(body: string): { lines: string[]; problem: string | null } {
  if (body === '') return { lines: [], problem: null }
  if (!body.endsWith('\n')) return { lines: [], problem: 'the last line has no line feed' }
  const lines = body.slice(0, -1).split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string
    if (!isHex64(line)) return { lines, problem: `line ${i + 1} is not a pseudonym` }
    if (i > 0 && line <= (lines[i - 1] as string)) {
      return { lines, problem: `line ${i + 1} is not above line ${i} (unsorted or repeated)` }
    }
  }
  return { lines, problem: null }
}

/** The first rank at which two winner lists differ, or null when they are equal. */
function firstDifference(expected: readonly string[], published: readonly string[]): number | null {
  const n = Math.max(expected.length, published.length)
  for (let i = 0; i < n; i++) if (expected[i] !== published[i]) return i + 1
  return null
}

export function verifyDraw(input: VerifyInput): DrawVerification {
  const { record } = input
  const seed = seedFromHex(record.seed)
  const checks: DrawCheck[] = []
  const check = (name: CheckName, ok: boolean, detail: string) => checks.push({ name, ok, detail })

  check(
    'algorithm',
    record.algorithm === DRAW_ALGORITHM,
    record.algorithm === DRAW_ALGORITHM
      ? record.algorithm
      : `${record.algorithm} is not ${DRAW_ALGORITHM}, the one this checker knows`,
  )
  const commitment = commitmentOf(seed)
  check(
    'commitment',
    commitment === record.commitment,
    commitment === record.commitment
      ? `SHA-256(seed) = ${commitment}`
      : `SHA-256(seed) = ${commitment}, but the record says ${record.commitment}`,
  )
  if (input.publishedCommitment !== undefined) {
    const same = input.publishedCommitment === record.commitment
    check(
      'published commitment',
      same,
      same
        ? 'the record has the commitment published before the event'
        : `the record has ${record.commitment}, not the one published (${input.publishedCommitment})`,
    )
  }

  const { lines, problem } = readList(input.entrantList)
  check('entrant list', problem === null, problem ?? 'pseudonyms, sorted, each once')
  check(
    'count',
    problem === null && lines.length === record.entrants,
    problem !== null
      ? 'not counted: the list is not valid'
      : `${lines.length} entrants${lines.length === record.entrants ? '' : `, but the record says ${record.entrants}`}`,
  )
  const digest = createHash('sha256').update(input.entrantList, 'utf8').digest('hex')
  check(
    'digest',
    digest === record.entrantsDigest,
    digest === record.entrantsDigest
      ? `SHA-256(entrant list) = ${digest}`
      : `SHA-256(entrant list) = ${digest}, but the record says ${record.entrantsDigest}`,
  )

  let expected: string[] | null = null
  if (problem !== null) {
    check('winners', false, 'not recomputed: the entrant list is not valid')
  } else {
    expected = winnersOf(seed, lines, digest, record.quantity)
    const differs = firstDifference(expected, record.winners)
    check(
      'winners',
      differs === null,
      differs === null
        ? `${expected.length} of ${lines.length} entrants for ${record.quantity} coupons, in the published order`
        : expected.length !== record.winners.length
          ? `recomputed ${expected.length} winners, the record has ${record.winners.length}`
          : `the recomputed winner at rank ${differs} is not the published one`,
    )
  }

  const user =
    input.userId === undefined
      ? null
      : fateOf(seed, input.userId, lines, expected ?? record.winners)
  return { ok: checks.every((c) => c.ok), checks, user }
}

function fateOf(
  seed: Uint8Array,
  userId: string,
  entrants: readonly string[],
  winners: readonly string[],
): UserFate {
  const pseudonym = pseudonymOf(seed, userId)
  const at = winners.indexOf(pseudonym)
  return { userId, pseudonym, entered: entrants.includes(pseudonym), rank: at < 0 ? null : at + 1 }
}
