/**
 * The issue fast lane: the issue routes' common case answered on node:http
 * directly, skipping Fastify's generic lifecycle; everything else goes to Fastify.
 * Only the transport is here (which requests it takes, reading the body, writing
 * the answer); every step from headers to answer is the issue pipeline's
 * (issue-pipeline.ts), which the Fastify routes run too.
 *
 * It applies the app's own hooks on these routes itself (closing, metrics, and
 * through the pipeline its routes' own) and refuses to start when they carry any
 * other hook.
 * docs/architecture.md, "The HTTP layer".
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { isIdempotencyKey } from '../domain/request-id.js'
import type { Metrics, RequestTimer } from '../ops/metrics.js'
import { INTERNAL_ERROR } from './errors.js'
import {
  type Answer,
  COMPAT_ROUTES,
  CONTENT_TYPE,
  EndpointMetrics,
  ISSUE_ROUTE,
} from './issue-endpoint.js'
import type { IssueInput, IssuePipeline } from './issue-pipeline.js'
import { COUPON_ID_DIGITS } from './schemas.js'

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

export interface IssueFastLaneOptions {
  pipeline: IssuePipeline
  metrics: Metrics
  /** the app's body limit: a longer body is Fastify's to refuse */
  bodyLimit: number
  /** true once the app has begun to close: each answer then closes its connection */
  closing: () => boolean
  /** TRUST_PROXY: the client is the leftmost X-Forwarded-For address, as Fastify's request.ip */
  trustProxy: boolean
}

const now = () => performance.now()
const ISSUE_PATH = new RegExp(`^/v1/coupons/(${COUPON_ID_DIGITS})/issues$`)
const JSON_TYPE = /^application\/json\s*(?:;\s*charset=utf-8\s*)?$/i
/** Headers of an injected answer that belong to its own connection, not the client's. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date'])

/** Fastify's per-request hooks: the lane skips them all, so it must know each one. */
const LIFECYCLE_HOOKS = [
  'onRequest',
  'preParsing',
  'preValidation',
  'preHandler',
  'preSerialization',
  'onSend',
  'onResponse',
  'onError',
  'onTimeout',
  'onRequestAbort',
] as const

/** One request the lane took: the pipeline's input, and its route's metrics. */
interface LaneRequest extends IssueInput {
  readonly timer: RequestTimer
  key: string | undefined
  body: unknown
  ip: string
}

export class IssueFastLane {
  readonly #o: IssueFastLaneOptions
  readonly #pipeline: IssuePipeline
  readonly #metrics: EndpointMetrics
  #app: FastifyInstance | null = null
  /** the hooks the app adds knowing the lane applies them itself */
  readonly #handled = new Set<unknown>()
  /** each lane route, and the instance it was declared on: whose hooks it runs */
  readonly #routes: { route: RouteOptions; instance: FastifyInstance }[] = []

  constructor(options: IssueFastLaneOptions) {
    this.#o = options
    this.#pipeline = options.pipeline
    this.#metrics = new EndpointMetrics(options.metrics)
  }

  /** The server's request handler: the lane's requests here, the rest to Fastify. */
  handler(fastify: RequestHandler): RequestHandler {
    return (req, res) => {
      if (!this.#take(req, res)) fastify(req, res)
    }
  }

  /**
   * Before any route is declared: the hooks `add` adds to the app, and the issue
   * routes' own, are the lane's to apply itself; any other hook on its routes (a
   * global one, a plugin's) makes the app refuse to start, naming it.
   */
  watch(app: FastifyInstance, add: () => void): void {
    // Fastify adds a hook only once the plugins before it have loaded: the
    // functions are noted as they are handed over.
    const addHook = app.addHook
    const handled = this.#handled
    app.addHook = function (this: FastifyInstance, ...args: unknown[]) {
      handled.add(args[1])
      return (addHook as (...a: unknown[]) => FastifyInstance).apply(this, args)
    } as typeof addHook
    try {
      add()
    } finally {
      app.addHook = addHook
    }
    const routes = this.#routes
    app.addHook('onRoute', function (this: FastifyInstance, route: RouteOptions) {
      if (route.method !== 'POST' || (route.url !== ISSUE_ROUTE && !COMPAT_ROUTES.has(route.url)))
        return
      // As declared (issue-routes.ts, compat-routes.ts); a later plugin's onRoute
      // hook may add more.
      for (const hook of routeHooks(route)) handled.add(hook.fn)
      routes.push({ route, instance: this })
    })
    app.addHook('onReady', (done) => done(this.#unknownHooks()))
  }

  /** Once the app is built: bodies to replay go to it. */
  attach(app: FastifyInstance): void {
    this.#app = app
  }

  #unknownHooks(): Error | undefined {
    // hook → the routes it would be skipped on
    const unknown = new Map<unknown, { label: string; routes: string[] }>()
    for (const { route, instance } of this.#routes) {
      const hooks = hooksOf(instance)
      const all = LIFECYCLE_HOOKS.flatMap((name) => hooks[name].map((fn) => ({ name, fn })))
      for (const { name, fn } of [...all, ...routeHooks(route)]) {
        if (this.#handled.has(fn)) continue
        const seen = unknown.get(fn) ?? {
          label: `${name} hook ${fn.name || '(anonymous)'}`,
          routes: [],
        }
        seen.routes.push(`POST ${route.url}`)
        unknown.set(fn, seen)
      }
    }
    if (unknown.size === 0) return undefined
    const list = [...unknown.values()].map((u) => `${u.label} on ${u.routes.join(', ')}`)
    return new Error(
      `the issue fast lane would skip ${list.join('; ')}: apply it in src/http/issue-pipeline.ts too, or keep it off these routes`,
    )
  }

  #take(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || !this.#app) return false
    const lane = this.#laneOf(req, req.url ?? '')
    if (!lane) return false
    const headers = req.headers
    const type = headers['content-type']
    if (type === undefined || (type !== 'application/json' && !JSON_TYPE.test(type))) return false
    if (headers['transfer-encoding'] !== undefined) return false
    const length = Number(headers['content-length'])
    if (!(length >= 1 && length <= this.#o.bodyLimit)) return false
    if (!lane.compat) {
      const key = headers['idempotency-key']
      if (key !== undefined && !isIdempotencyKey(key)) return false
      lane.key = key
    }
    // Closing and admission, once the lane takes the request: refused before its
    // body is read (node:http reads and drops it after the answer).
    const refused = this.#pipeline.head(lane.compat)
    if (refused) {
      this.#send(res, lane, refused)
      return true
    }

    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
      this.#answer(req, res, lane, body)
    })
    // A client gone mid-body: no 'end', nothing to answer. (node:http emits no
    // 'error' on a request that has no listener for it, so none is added.)
    return true
  }

  #laneOf(req: IncomingMessage, url: string): LaneRequest | null {
    let timer = this.#metrics.compat(url)
    const compat = timer !== undefined
    let couponId = 0
    if (!timer) {
      const m = ISSUE_PATH.exec(url)
      if (!m) return null
      timer = this.#metrics.issue
      couponId = Number(m[1])
    }
    return {
      timer,
      compat,
      couponId,
      body: undefined,
      headers: req.headers,
      ip: '',
      key: undefined,
      started: now(),
      log: (this.#app as FastifyInstance).log,
    }
  }

  #answer(req: IncomingMessage, res: ServerResponse, lane: LaneRequest, body: Buffer) {
    try {
      lane.body = JSON.parse(body.toString())
    } catch {
      return this.#replay(req, res, body)
    }
    lane.ip = this.#clientIp(req)
    const answer = this.#pipeline.handle(lane)
    // Not the route's shape: Fastify's validator answers it.
    if (answer === null) return this.#replay(req, res, body)
    if (!(answer instanceof Promise)) return this.#send(res, lane, answer)
    answer.then((decided) => this.#send(res, lane, decided))
  }

  #clientIp(req: IncomingMessage): string {
    const forwarded = this.#o.trustProxy ? req.headers['x-forwarded-for'] : undefined
    const first = typeof forwarded === 'string' ? forwarded.split(',')[0]?.trim() : ''
    return first || (req.socket.remoteAddress ?? '')
  }

  #send(res: ServerResponse, lane: LaneRequest, answer: Answer) {
    const headers = ['content-type', CONTENT_TYPE, 'content-length', String(answer.body.length)]
    if (answer.headers)
      for (const [name, value] of Object.entries(answer.headers)) headers.push(name, value)
    // As Fastify does for a request answered once closing has begun.
    if (this.#o.closing()) headers.push('connection', 'close')
    res.writeHead(answer.status, headers)
    res.end(answer.body)
    this.#metrics.answered(lane.timer, answer.status, (now() - lane.started) / 1000)
  }

  /** Fastify answers a body the lane does not take, exactly as if it had read it. */
  #replay(req: IncomingMessage, res: ServerResponse, body: Buffer) {
    const app = this.#app as FastifyInstance
    app
      .inject({
        method: 'POST',
        url: req.url ?? '/',
        headers: req.headers,
        payload: body,
        remoteAddress: req.socket.remoteAddress,
      })
      .then(
        (injected) => {
          for (const [name, value] of Object.entries(injected.headers)) {
            if (value !== undefined && !HOP_HEADERS.has(name)) res.setHeader(name, value)
          }
          if (this.#o.closing()) res.setHeader('connection', 'close')
          res.writeHead(injected.statusCode)
          res.end(injected.rawPayload)
        },
        (err: unknown) => {
          app.log.error({ err }, 'replaying a request through Fastify failed')
          res.writeHead(500, ['content-type', CONTENT_TYPE])
          res.end(JSON.stringify(INTERNAL_ERROR))
        },
      )
  }
}

type HookName = (typeof LIFECYCLE_HOOKS)[number]
type Hooks = Record<HookName, readonly { name: string }[]>

/** A route's own hooks (its options'), by name. */
function routeHooks(route: RouteOptions): { name: HookName; fn: { name: string } }[] {
  const own: { name: HookName; fn: { name: string } }[] = []
  for (const name of LIFECYCLE_HOOKS) {
    const value = (route as unknown as Record<string, unknown>)[name]
    const fns = Array.isArray(value) ? value : value ? [value] : []
    for (const fn of fns) own.push({ name, fn })
  }
  return own
}

/**
 * An instance's per-request hooks, as Fastify will run them on its routes. Fastify
 * has no public way to list them: they are read from its own field, and an app
 * where that field is gone refuses to start rather than guess.
 */
function hooksOf(instance: FastifyInstance): Hooks {
  let hooks: Hooks | undefined
  for (let o: object | null = instance; o && !hooks; o = Object.getPrototypeOf(o)) {
    const key = Object.getOwnPropertySymbols(o).find((s) => s.description === 'fastify.hooks')
    if (key) hooks = (o as Record<symbol, Hooks>)[key]
  }
  if (!hooks || !LIFECYCLE_HOOKS.every((name) => Array.isArray(hooks[name])))
    throw new Error("the issue fast lane cannot see Fastify's hooks on its routes")
  return hooks
}
