/**
 * The issue fast lane: the issue routes' common case answered on node:http
 * directly, skipping Fastify's generic lifecycle; everything else goes to Fastify.
 * Only the transport is here (which requests it takes, reading the body, writing
 * the answer); every step from headers to answer is the issue pipeline's
 * (issue-pipeline.ts), which the Fastify routes run too.
 *
 * Hooks, through Fastify's public API only. The lane skips Fastify's lifecycle,
 * so every per-request hook that would run on its routes must be one it applies
 * itself, or the app refuses to start, naming it. What can reach its routes:
 * - a hook added to the root instance (the app's, or a fastify-plugin plugin's at
 *   the root): `watch` puts a recorder in front of the root's `addHook` for the
 *   app's life, which notes each lifecycle hook with the instance it is added to;
 * - a hook added inside the encapsulated plugin its routes are declared in
 *   (`scope`): that instance's `addHook` is the recorder too;
 * - the routes' own hooks, from their options: the lane's `onRoute` hook, the
 *   first, notes those the routes are declared with (the pipeline's), and reads
 *   the options again once the app is ready, so a hook a later plugin's `onRoute`
 *   adds is seen.
 * A hook added inside any other plugin is encapsulated there and cannot reach
 * these routes, and a lane route declared anywhere but the root or the lane's
 * scope makes the app refuse to start. The hooks the app adds inside `watch`
 * (the closing refusal, request metrics) are the lane's own to apply.
 * docs/architecture.md, "The HTTP layer".
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance, FastifyPluginAsync, RouteOptions } from 'fastify'
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
  /** TRUST_PROXY: the proxies that add to X-Forwarded-For (0: none); the client as Fastify's request.ip */
  trustProxy: number
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
type HookName = (typeof LIFECYCLE_HOOKS)[number]
const isLifecycleHook = (name: unknown): name is HookName =>
  (LIFECYCLE_HOOKS as readonly unknown[]).includes(name)

/** One request the lane took: the pipeline's input, and its route's metrics. */
interface LaneRequest extends IssueInput {
  readonly timer: RequestTimer
  key: string | undefined
  body: unknown
  ip: string
}

/** A hook as it was added: to which instance, under which name. */
interface AddedHook {
  instance: object
  name: HookName
  fn: { name: string }
}

export class IssueFastLane {
  readonly #o: IssueFastLaneOptions
  readonly #pipeline: IssuePipeline
  readonly #metrics: EndpointMetrics
  #app: FastifyInstance | null = null
  /** the root instance, and the plugin instance the lane's routes are declared in */
  #root: object | null = null
  #scope: object | null = null
  /** true while the app adds the hooks the lane applies itself */
  #adding = false
  /** the hooks the lane applies itself */
  readonly #handled = new Set<unknown>()
  /** every lifecycle hook added to the root or the scope, but the handled ones */
  readonly #added: AddedHook[] = []
  /** each lane route, and the instance it was declared on */
  readonly #routes: { route: RouteOptions; instance: object }[] = []
  /** the recording addHook functions */
  readonly #recorders = new WeakSet<object>()
  /** lane routes declared outside the scope, whose hooks the lane cannot see */
  readonly #misplaced: string[] = []

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
   * Before anything else is added to the app: records the hooks added to it from
   * now on, the ones `add` adds being the lane's to apply itself, and refuses to
   * let the app start if any other would reach the lane's routes.
   */
  watch(app: FastifyInstance, add: () => void): void {
    if (this.#root) throw new Error('the issue fast lane serves one app, and has one')
    this.#root = app
    app.addHook = this.#recorder(app.addHook)
    this.#adding = true
    try {
      add()
    } finally {
      this.#adding = false
    }
    const lane = this
    app.addHook('onRoute', function (this: FastifyInstance, route: RouteOptions) {
      lane.#declared(this, route)
    })
    app.addHook('onReady', (done) => done(this.#skipped()))
  }

  /**
   * The encapsulated plugin the lane's routes are declared in: `declare` declares
   * them on the instance it is given (not in a plugin of its own: a hook added
   * there would be out of the lane's sight).
   */
  scope(declare: (scope: FastifyInstance) => Promise<void>): FastifyPluginAsync {
    return async (scope) => {
      this.#scope = scope
      // It inherits the root's recorder; should Fastify ever give it an addHook of
      // its own, that is recorded too.
      if (!this.#recorders.has(scope.addHook)) scope.addHook = this.#recorder(scope.addHook)
      await declare(scope)
    }
  }

  /** Once the app is built: bodies to replay go to it. */
  attach(app: FastifyInstance): void {
    this.#app = app
  }

  /** addHook, noting each lifecycle hook and the instance it is added to. */
  #recorder(addHook: FastifyInstance['addHook']): FastifyInstance['addHook'] {
    const lane = this
    const recorder = function (this: FastifyInstance, ...args: unknown[]) {
      const [name, fn] = args
      if (isLifecycleHook(name)) {
        if (lane.#adding) lane.#handled.add(fn)
        else lane.#added.push({ instance: this, name, fn: fn as { name: string } })
      }
      return (addHook as (...a: unknown[]) => FastifyInstance).apply(this, args)
    } as FastifyInstance['addHook']
    this.#recorders.add(recorder)
    return recorder
  }

  #declared(instance: object, route: RouteOptions): void {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (!methods.includes('POST') || (route.url !== ISSUE_ROUTE && !COMPAT_ROUTES.has(route.url)))
      return
    if (instance !== this.#root && instance !== this.#scope) {
      this.#misplaced.push(`POST ${route.url}`)
      return
    }
    // As declared (issue-routes.ts, compat-routes.ts): the pipeline's own. A later
    // plugin's onRoute hook may add more.
    for (const hook of routeHooks(route)) this.#handled.add(hook.fn)
    this.#routes.push({ route, instance })
  }

  #skipped(): Error | undefined {
    if (this.#misplaced.length > 0)
      return new Error(
        `the issue fast lane cannot see the hooks of ${this.#misplaced.join(', ')}: declare it in the lane's scope (IssueFastLane.scope)`,
      )
    const problems: string[] = []
    // hook → the routes it would be skipped on
    const unknown = new Map<unknown, { label: string; routes: string[] }>()
    for (const { route, instance } of this.#routes) {
      const reaching = this.#added.filter(
        (h) => h.instance === this.#root || h.instance === instance,
      )
      for (const { name, fn } of [...reaching, ...routeHooks(route)]) {
        if (this.#handled.has(fn)) continue
        const seen = unknown.get(fn) ?? {
          label: `${name} hook ${fn.name || '(anonymous)'}`,
          routes: [],
        }
        seen.routes.push(`POST ${route.url}`)
        unknown.set(fn, seen)
      }
    }
    for (const u of unknown.values()) problems.push(`${u.label} on ${u.routes.join(', ')}`)
    if (problems.length === 0) return undefined
    return new Error(
      `the issue fast lane would skip ${problems.join('; ')}: apply it in src/http/issue-pipeline.ts too, or keep it off these routes`,
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

  /**
   * The client's address as Fastify's `trustProxy: hops` reads it (proxy-addr):
   * from the socket's address leftwards through X-Forwarded-For, the first
   * address past the trusted hops (or the leftmost, if there are fewer).
   */
  #clientIp(req: IncomingMessage): string {
    const socket = req.socket.remoteAddress ?? ''
    const hops = this.#o.trustProxy
    const forwarded = hops > 0 ? req.headers['x-forwarded-for'] : undefined
    if (typeof forwarded !== 'string') return socket
    const chain = [
      socket,
      // Empty entries skipped, as Fastify's parser (@fastify/forwarded) does.
      ...forwarded
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== '')
        .reverse(),
    ]
    return chain[Math.min(hops, chain.length - 1)] || socket
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
