/**
 * The baseline: a bare node:http server in one process that answers the routes
 * the bench loads with a small fixed JSON body, like the one firstcome gives most
 * requests of the scenario. It reads each request body to its end (a real route
 * must) and does nothing else, so firstcome/baseline is the cost of firstcome
 * itself on this machine, with this client, in this run.
 *
 *   node baseline-server.js <scenario>    prints "baseline listening on <url>"
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import type { ScenarioName } from './scenarios.js'
import { compatComments, refusalMessages } from './service-messages.js'

/** The same backlog firstcome asks for by default (LISTEN_BACKLOG). */
const BACKLOG = 8192
/** Fastify's default, so idle keep-alive connections live as long on both servers. */
const KEEP_ALIVE_TIMEOUT_MS = 72_000

interface Fixed {
  status: number
  body: Buffer
}

const json = (status: number, value: unknown): Fixed => ({
  status,
  body: Buffer.from(JSON.stringify(value)),
})

/** The answer firstcome gives most requests of each scenario. */
export function fixedAnswers(scenario: ScenarioName): { issue: Fixed; compat: Fixed } {
  const soldOut = json(409, { code: 'SOLD_OUT', message: refusalMessages.SOLD_OUT })
  const won = json(201, { couponId: 1, userId: '1000000', rank: 1000000 })
  const entered = json(202, {
    couponId: 1,
    userId: '1000000',
    state: 'ENTERED',
    drawAt: '2026-12-10T03:05:00.000Z',
  })
  const compat = json(200, { isSuccess: false, comment: compatComments.SOLD_OUT })
  const issue = scenario === 'win' ? won : scenario === 'draw' ? entered : soldOut
  return { issue, compat }
}

const ISSUE = /^\/v1\/coupons\/\d+\/issues$/
const COMPAT = new Set(['/v1/issue', '/v1/issue-async', '/v2/issue-async'])
const READY = json(200, { status: 'ready' })
const NOT_FOUND = json(404, { code: 'NOT_FOUND', message: 'Route not found.' })

export function baselineHandler(scenario: ScenarioName) {
  const answers = fixedAnswers(scenario)
  const pick = (req: IncomingMessage): Fixed => {
    const url = req.url ?? ''
    if (req.method === 'POST' && ISSUE.test(url)) return answers.issue
    if (req.method === 'POST' && COMPAT.has(url)) return answers.compat
    if (req.method === 'GET' && (url === '/readyz' || url === '/healthz')) return READY
    return NOT_FOUND
  }
  return (req: IncomingMessage, res: ServerResponse) => {
    const answer = pick(req)
    req.on('data', () => {})
    req.on('end', () => {
      res.writeHead(answer.status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': answer.body.length,
      })
      res.end(answer.body)
    })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const scenario = (process.argv[2] ?? 'seed') as ScenarioName
  const server = createServer(
    { keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS },
    baselineHandler(scenario),
  )
  server.listen({ host: '127.0.0.1', port: 0, backlog: BACKLOG }, () => {
    const address = server.address()
    const port = typeof address === 'object' && address ? address.port : 0
    process.stdout.write(`baseline listening on http://127.0.0.1:${port}\n`)
  })
  const stop = () => server.close(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
