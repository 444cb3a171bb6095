/**
 * Events to other systems (admin): the pull feed with its long poll, and the
 * webhook endpoints' registration (docs/events.md).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Db } from '../db/database.js'
import { AppError } from '../domain/errors.js'
import { EVENT_TYPES, readFeed } from '../events/feed.js'
import type { FeedSignal } from '../events/feed-signal.js'
import { type HostAllowList, newSecret, urlProblem } from '../events/webhook-delivery.js'
import type { WebhookStatus, WebhookStatuses } from '../events/webhook-status.js'
import {
  deleteWebhook,
  enableWebhook,
  insertWebhook,
  type Webhook,
} from '../events/webhooks-repo.js'
import { adminGuard, routeSecurity } from './auth.js'
import { ErrorBody, NO_NUL } from './schemas.js'

export interface EventRoutesOptions {
  db: Db
  signal: FeedSignal
  statuses: WebhookStatuses
  allowedHosts: HostAllowList
  adminToken: string
}

const errors = { '4xx': ErrorBody, '5xx': ErrorBody }
const MAX_WAIT_S = 30

const Event = Type.Object({
  id: Type.Integer(),
  type: Type.String(),
  createdAt: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
})

const FeedQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'default 0' })),
    limit: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,4}$', description: '1..1000, default 100' }),
    ),
    wait: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,2}$', description: 'seconds, 0..30, default 0' }),
    ),
  },
  { additionalProperties: false },
)

const WebhookIdParams = Type.Object({
  id: Type.String({ pattern: '^[0-9]{1,15}$', description: 'webhook id' }),
})

const CreateWebhookBody = Type.Object(
  {
    // The URL parser would let a NUL by, encoded; the raw string is what is stored.
    url: Type.String({ minLength: 1, maxLength: 2048, pattern: NO_NUL }),
    events: Type.Array(Type.Union(EVENT_TYPES.map((t) => Type.Literal(t))), {
      minItems: 1,
      uniqueItems: true,
      description: 'the types to deliver',
    }),
    secret: Type.Optional(
      Type.String({
        minLength: 16,
        maxLength: 255,
        pattern: '^[\\x21-\\x7e]+$',
        description: 'default: one is generated',
      }),
    ),
  },
  { additionalProperties: false },
)

const nullableInt = Type.Union([Type.Integer(), Type.Null()])
const nullableTime = Type.Union([Type.String(), Type.Null()])

const WebhookOut = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  /** only in the answer to its creation */
  secret: Type.Optional(Type.String()),
  state: Type.String(),
  deliveredThrough: Type.Integer(),
  lag: Type.Optional(Type.Object({ events: Type.Integer(), seconds: Type.Number() })),
  attempts: Type.Integer(),
  nextAttemptAt: nullableTime,
  lastStatus: nullableInt,
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastAttemptAt: nullableTime,
  lastSuccessAt: nullableTime,
  createdAt: Type.String(),
})

const iso = (ms: number | null) => (ms === null || ms === 0 ? null : new Date(ms).toISOString())

function webhookOut(w: Webhook, lag?: WebhookStatus['lag']) {
  return {
    id: w.id,
    url: w.url,
    events: w.types,
    state: w.state,
    deliveredThrough: w.deliveredSeq,
    ...(lag ? { lag: { events: lag.events, seconds: Math.round(lag.seconds * 1000) / 1000 } } : {}),
    attempts: w.attempts,
    nextAttemptAt: iso(w.nextAttemptAt),
    lastStatus: w.lastStatus,
    lastError: w.lastError,
    lastAttemptAt: iso(w.lastAttemptAt),
    lastSuccessAt: iso(w.lastSuccessAt),
    createdAt: new Date(w.createdAt).toISOString(),
  }
}

/** The dashboard's view of the endpoints (no secrets). */
export function webhookOverview(statuses: WebhookStatuses) {
  return async () =>
    (await statuses.get()).map((s) => ({
      id: s.webhook.id,
      url: s.webhook.url,
      state: s.webhook.state,
      lagEvents: s.lag.events,
      lagSeconds: s.lag.seconds,
      lastStatus: s.webhook.lastStatus,
      lastError: s.webhook.lastError,
    }))
}

const noWebhook = (id: number) => new AppError('NOT_FOUND', `No webhook ${id}.`)

function intOf(raw: string | undefined, fallback: number, min: number, max: number, name: string) {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new AppError('VALIDATION_FAILED', `${name} must be an integer ${min}..${max}`)
  return n
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRoutesOptions> = async (app, opts) => {
  const { db, signal, statuses } = opts
  const onRequest = adminGuard(opts.adminToken)
  /** The endpoint as it stands now (read fresh), or NOT_FOUND. */
  const webhookNow = async (id: number) => {
    const s = (await statuses.fresh()).find((x) => x.webhook.id === id)
    if (!s) throw noWebhook(id)
    return webhookOut(s.webhook, s.lag)
  }

  app.get(
    '/v1/events',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: 'The events feed: events after a feed id, in order',
        description:
          "Events with an id above `after`, oldest first, at most `limit`. `next` is the id to pass as `after` next time (the last item's, or `after` when there are none). With `wait` (seconds) and nothing new, the answer waits until events arrive or the time is up. Ids increase; they are not dense. An event is never shown before one with a smaller id (see docs/events.md).",
        security: routeSecurity.admin,
        querystring: FeedQuery,
        response: {
          200: Type.Object({ items: Type.Array(Event), next: Type.Integer() }),
          ...errors,
        },
      },
    },
    async (request) => {
      const after = intOf(request.query.after, 0, 0, Number.MAX_SAFE_INTEGER, 'after')
      const limit = intOf(request.query.limit, 100, 1, 1000, 'limit')
      const wait = intOf(request.query.wait, 0, 0, MAX_WAIT_S, 'wait')
      const deadline = Date.now() + wait * 1000
      const gone = new AbortController()
      request.raw.once('close', () => gone.abort())
      for (;;) {
        // Listen before reading: a notice between the read and the wait is not missed.
        const left = deadline - Date.now()
        const woken = left > 0 ? signal.next(left, gone.signal) : null
        const items = await readFeed(db, { after, limit })
        if (items.length > 0 || !woken || gone.signal.aborted) {
          gone.abort()
          return { items, next: items.at(-1)?.id ?? after }
        }
        await woken
      }
    },
  )

  app.post(
    '/v1/webhooks',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: 'Register a webhook endpoint',
        description:
          'Events sequenced from now on are POSTed to `url` in signed batches (docs/events.md). The secret (given, or generated) is in this answer only. 400 VALIDATION_FAILED: not http(s), credentials in the URL, or a host outside WEBHOOK_ALLOWED_HOSTS.',
        security: routeSecurity.admin,
        body: CreateWebhookBody,
        response: { 201: WebhookOut, ...errors },
      },
    },
    async (request, reply) => {
      const { url, events, secret } = request.body
      const problem = urlProblem(url, opts.allowedHosts)
      if (problem) throw new AppError('VALIDATION_FAILED', problem)
      const given = secret ?? newSecret()
      const w = await insertWebhook(db, {
        url,
        types: events,
        secret: given,
      })
      reply.code(201)
      return { ...webhookOut(w), secret: given }
    },
  )

  app.get(
    '/v1/webhooks',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: 'Webhook endpoints, with their lag, last status and last error',
        security: routeSecurity.admin,
        response: { 200: Type.Object({ items: Type.Array(WebhookOut) }), ...errors },
      },
    },
    // Read now, not the second-old figures of /metrics: an admin's list after a change shows it.
    async () => ({ items: (await statuses.fresh()).map((s) => webhookOut(s.webhook, s.lag)) }),
  )

  app.get(
    '/v1/webhooks/:id',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: 'One webhook endpoint',
        security: routeSecurity.admin,
        params: WebhookIdParams,
        response: { 200: WebhookOut, ...errors },
      },
    },
    async (request) => {
      return webhookNow(Number(request.params.id))
    },
  )

  app.delete(
    '/v1/webhooks/:id',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary:
          'Remove a webhook endpoint (no batch is started for it once its dispatcher sees the delete)',
        security: routeSecurity.admin,
        params: WebhookIdParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      const id = Number(request.params.id)
      if (!(await deleteWebhook(db, id))) throw noWebhook(id)
      reply.code(204)
      return null
    },
  )

  app.post(
    '/v1/webhooks/:id/enable',
    {
      onRequest,
      schema: {
        tags: ['admin'],
        summary: 'Deliver to a failing endpoint again, from where it stopped',
        security: routeSecurity.admin,
        params: WebhookIdParams,
        response: { 200: WebhookOut, ...errors },
      },
    },
    async (request) => {
      const id = Number(request.params.id)
      if (!(await enableWebhook(db, id))) throw noWebhook(id)
      return webhookNow(id)
    },
  )
}
