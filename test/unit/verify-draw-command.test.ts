/**
 * `firstcome verify-draw` as a command: it fetches the record and the entrant
 * list over HTTP (here from a small server publishing a draw made with the
 * documented functions), prints a line per check and exits 0 when the draw
 * checks out, 1 when a check fails, 2 when it cannot check. Run in this process,
 * and once as the real command; test/e2e/draw-verify.test.ts runs the command
 * against the service.
 */
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { pseudonymOf } from '../../src/draw/shuffle.js'
import { runVerifyDraw } from '../../src/draw/verify-command.js'
import { type PublishedDraw, publishedDraw } from '../helpers/draws.js'
import { type CommandRun, verifyDrawCommand } from '../helpers/verify-draw.js'

const SEED = Buffer.alloc(32, 0x11)

/** The command run in this process, its output captured. */
async function verifyDraw(
  url: string,
  couponId: number,
  extra: string[] = [],
): Promise<CommandRun> {
  let stdout = ''
  let stderr = ''
  const status = await runVerifyDraw(['--url', url, '--coupon', String(couponId), ...extra], {
    out: (text) => {
      stdout += text
    },
    err: (text) => {
      stderr += text
    },
  })
  return { status, stdout, stderr, output: `${stdout}\n${stderr}` }
}
const USERS = Array.from({ length: 50 }, (_, i) => `user-${i}`)

describe('firstcome verify-draw', () => {
  const draws = new Map<string, PublishedDraw>()
  let server: Server
  let url: string

  before(async () => {
    const honest = publishedDraw(SEED, USERS, 10)
    draws.set('1', honest)
    const [a, b, ...rest] = honest.record.winners
    draws.set('2', {
      ...honest,
      record: { ...honest.record, winners: [b, a, ...rest] as string[] },
    })
    server = createServer((req, res) => {
      const match = /^\/v1\/coupons\/(\d+)\/draw(\/entrants)?$/.exec(req.url ?? '')
      const draw = match && draws.get(match[1] ?? '')
      if (!draw) {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ code: 'COUPON_NOT_FOUND', message: 'The coupon does not exist.' }))
      } else if (match[2]) {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
        res.end(draw.entrantList)
      } else {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify(draw.record))
      }
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(() => server?.close())

  it('says an honest draw checks out, and where a user stands', async () => {
    const winner = USERS.find((u) => pseudonymOf(SEED, u) === draws.get('1')?.record.winners[2])
    const run = await verifyDraw(url, 1, ['--user', String(winner)])
    assert.equal(run.status, 0, run.output)
    for (const check of ['algorithm', 'commitment', 'entrant list', 'count', 'digest', 'winners']) {
      assert.match(run.stdout, new RegExp(`^ok +${check} `, 'm'))
    }
    assert.match(
      run.stdout,
      new RegExp(`user ${winner}: entered \\(pseudonym [0-9a-f]{64}\\), drawn, rank 3`),
    )
    assert.match(run.stdout, /the draw checks out/)

    const loser = USERS.find((u) => !draws.get('1')?.record.winners.includes(pseudonymOf(SEED, u)))
    const asLoser = await verifyDraw(url, 1, ['--user', String(loser)])
    assert.match(asLoser.stdout, new RegExp(`user ${loser}: entered .*, not drawn`))
    const outsider = await verifyDraw(url, 1, ['--user', 'someone-else'])
    assert.match(outsider.stdout, /user someone-else: not among the entrants/)
  })

  it('fails a draw whose winners are not the shuffle, naming the check', async () => {
    const run = await verifyDraw(url, 2)
    assert.equal(run.status, 1, run.output)
    assert.match(run.stdout, /^FAIL +winners +the recomputed winner at rank 1 /m)
    assert.match(run.stdout, /the draw does NOT check out: 1 of 6 checks failed/)
    const commitment = draws.get('1')?.record.commitment ?? ''
    const pinned = await verifyDraw(url, 1, ['--commitment', commitment.toUpperCase()])
    assert.equal(pinned.status, 0, pinned.output)
    const wrong = await verifyDraw(url, 1, ['--commitment', '0'.repeat(64)])
    assert.equal(wrong.status, 1, wrong.output)
    assert.match(wrong.stdout, /^FAIL +published commitment /m)
  })

  it('is the firstcome command, with its exit status', async () => {
    const ok = await verifyDrawCommand(url, 1)
    assert.equal(ok.status, 0, ok.output)
    assert.match(ok.stdout, /the draw checks out/)
    const failed = await verifyDrawCommand(url, 2)
    assert.equal(failed.status, 1, failed.output)
    const help = await verifyDrawCommand(url, 1, ['--help'])
    assert.equal(help.status, 0)
    assert.match(help.stdout, /^Usage: firstcome verify-draw/)
  })

  it('cannot check a draw it cannot fetch, or bad arguments', async () => {
    const missing = await verifyDraw(url, 9)
    assert.equal(missing.status, 2)
    assert.match(missing.stderr, /answered 404 \(COUPON_NOT_FOUND: The coupon does not exist\.\)/)
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const down = await verifyDraw(`http://127.0.0.1:${port}`, 1)
    assert.equal(down.status, 2)
    assert.match(down.stderr, /cannot fetch .*ECONNREFUSED/)
    const bad = await verifyDraw(url, 1, ['--user', 'not a user id'])
    assert.equal(bad.status, 2)
    assert.match(bad.stderr, /--user is a userId/)
    const unknown = await verifyDraw(url, 1, ['--verbose'])
    assert.equal(unknown.status, 2)
    assert.match(unknown.stderr, /Usage: firstcome verify-draw/)
  })
})
