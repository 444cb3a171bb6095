/**
 * `firstcome verify-draw`: fetches a draw's public record and entrant list,
 * checks them (verify.ts) and says so, a line per check. Exit 0: the draw checks
 * out; 1: a check failed; 2: bad arguments, or the answers could not be had.
 */
import { parseArgs } from 'node:util'
import { normaliseUserId } from '../domain/user-id.js'
import { parseDrawRecord } from './record.js'
import { isHex64 } from './shuffle.js'
import { type DrawVerification, type UserFate, verifyDraw } from './verify.js'

export const VERIFY_DRAW_USAGE = `Usage: firstcome verify-draw --url URL --coupon ID [--user USER_ID] [--commitment HEX]

Recomputes a coupon's opening draw from its public record and entrant list
(GET /v1/coupons/ID/draw and …/draw/entrants) and says whether the published
winners are the documented shuffle's. --user also tells whether that user entered
and was drawn; --commitment compares the record with the commitment published
before the event. Exit status: 0 verified, 1 a check failed, 2 could not check.`

const FETCH_TIMEOUT_MS = 120_000

class CannotCheck extends Error {
  override name = 'CannotCheck'
}

interface Options {
  url: string
  couponId: number
  userId?: string | undefined
  commitment?: string | undefined
}

function optionsOf(args: string[]): Options | 'help' {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      url: { type: 'string' },
      coupon: { type: 'string' },
      user: { type: 'string' },
      commitment: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) return 'help'
  const url = values.url?.replace(/\/+$/, '')
  if (!url || !/^https?:\/\/[^/]/.test(url)) throw new CannotCheck('--url http(s)://… is required')
  if (!/^[1-9][0-9]{0,14}$/.test(values.coupon ?? '')) {
    throw new CannotCheck('--coupon is a coupon id (a positive integer)')
  }
  const couponId = Number(values.coupon)
  const userId = values.user === undefined ? undefined : normaliseUserId(values.user)
  if (userId === null) throw new CannotCheck('--user is a userId: 1..64 of [A-Za-z0-9_.:@-]')
  const commitment = values.commitment?.toLowerCase()
  if (commitment !== undefined && !isHex64(commitment)) {
    throw new CannotCheck('--commitment is 64 hex digits')
  }
  return { url, couponId, userId, commitment }
}

/** fetch's error and its cause (ECONNREFUSED, a timeout, …) */
function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const cause = err.cause instanceof Error ? err.cause.message : undefined
  return cause ? `${err.message} (${cause})` : err.message
}

async function fetchOk(url: string): Promise<Response> {
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })
  } catch (err) {
    throw new CannotCheck(`cannot fetch ${url}: ${reason(err)}`)
  }
  if (res.status === 200) return res
  const body = await res.text()
  let said = body.slice(0, 200)
  try {
    const error = JSON.parse(body) as { code?: unknown; message?: unknown }
    said = `${error.code}: ${error.message}`
  } catch {}
  throw new CannotCheck(`${url} answered ${res.status} (${said})`)
}

export function describeFate(fate: UserFate): string {
  if (!fate.entered)
    return `user ${fate.userId}: not among the entrants (pseudonym ${fate.pseudonym})`
  const drawn = fate.rank === null ? 'not drawn' : `drawn, rank ${fate.rank}`
  return `user ${fate.userId}: entered (pseudonym ${fate.pseudonym}), ${drawn}`
}

export function report(v: DrawVerification): string[] {
  const lines = v.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(20)} ${c.detail}`)
  if (v.user) lines.push(describeFate(v.user))
  const failed = v.checks.filter((c) => !c.ok).length
  lines.push(
    failed === 0
      ? 'the draw checks out: the published winners are the documented shuffle of the entrants'
      : `the draw does NOT check out: ${failed} of ${v.checks.length} checks failed`,
  )
  return lines
}

export interface Output {
  out(text: string): void
  err(text: string): void
}

const stdio: Output = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}

/** Runs the command; resolves with its exit status. */
export async function runVerifyDraw(args: string[], io: Output = stdio): Promise<number> {
  try {
    const options = optionsOf(args)
    if (options === 'help') {
      io.out(`${VERIFY_DRAW_USAGE}\n`)
      return 0
    }
    const base = `${options.url}/v1/coupons/${options.couponId}/draw`
    const parsed = parseDrawRecord(await (await fetchOk(base)).json().catch(() => null))
    if (!parsed.ok)
      throw new CannotCheck(`${base}: not a draw record (${parsed.problems.join('; ')})`)
    const entrantList = await (await fetchOk(`${base}/entrants`)).text()
    io.out(`draw of coupon ${options.couponId} at ${options.url}\n`)
    const verification = verifyDraw({
      record: parsed.record,
      entrantList,
      publishedCommitment: options.commitment,
      userId: options.userId,
    })
    io.out(`${report(verification).join('\n')}\n`)
    return verification.ok ? 0 : 1
  } catch (err) {
    const usage =
      err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')
    if (!(err instanceof CannotCheck) && !usage) throw err
    io.err(`firstcome verify-draw: ${err.message}\n${usage ? `${VERIFY_DRAW_USAGE}\n` : ''}`)
    return 2
  }
}
