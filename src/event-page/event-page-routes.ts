/**
 * The event page, GET /e/{couponId}: one static file (event-page.html, no build
 * step, nothing from the internet) in Korean or English by Accept-Language, and
 * the public clock it counts down with, GET /v1/time.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { type FastifyPluginAsyncTypebox, Type } from '@fastify/type-provider-typebox'
import Negotiator from 'negotiator'
import { routeSecurity } from '../http/auth.js'
import { CouponIdParams } from '../http/schemas.js'

export type PageLanguage = 'ko' | 'en'

/**
 * The page's language: the first of Korean and English the browser accepts. No
 * header (or `*`): Korean, the audience the service is made for; a header that
 * accepts neither: English, the more widely read of the two.
 */
export function pageLanguage(acceptLanguage: string | undefined): PageLanguage {
  const headers = acceptLanguage === undefined ? {} : { 'accept-language': acceptLanguage }
  const chosen = new Negotiator({ headers }).language(['ko', 'en'])
  return chosen === 'en' || chosen === undefined ? 'en' : 'ko'
}

const source = readFileSync(new URL('./event-page.html', import.meta.url), 'utf8')
const LANG_ATTRIBUTE = '<html lang="en">'
if (!source.includes(LANG_ATTRIBUTE)) throw new Error(`event-page.html lacks ${LANG_ATTRIBUTE}`)
const pages: Record<PageLanguage, Buffer> = {
  en: Buffer.from(source),
  ko: Buffer.from(source.replace(LANG_ATTRIBUTE, '<html lang="ko">')),
}

/** CSP source of each inline block: the page runs its own script and style, nothing else. */
function inlineHashes(tag: 'script' | 'style'): string {
  const blocks = [...source.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
  return blocks
    .map(
      (m) =>
        `'sha256-${createHash('sha256')
          .update(m[1] ?? '')
          .digest('base64')}'`,
    )
    .join(' ')
}
const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${inlineHashes('script')}`,
    `style-src ${inlineHashes('style')}`,
    "connect-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; '),
  // The user token rides in the fragment, which no request carries; nothing else may either.
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
}

export interface EventPageOptions {
  /** the clock the countdown follows: the one that judges the issue window */
  now: () => number | Promise<number>
}

const TimeOut = Type.Object({
  now: Type.Integer({ description: 'the server clock, epoch milliseconds' }),
})

export const eventPageRoutes: FastifyPluginAsyncTypebox<EventPageOptions> = async (app, opts) => {
  app.get(
    '/e/:couponId',
    { schema: { hide: true, params: CouponIdParams } },
    async (request, reply) => {
      const language = pageLanguage(request.headers['accept-language'])
      return reply
        .type('text/html; charset=utf-8')
        .headers(SECURITY_HEADERS)
        .header('content-language', language)
        .header('vary', 'accept-language')
        .header('cache-control', 'no-cache')
        .send(pages[language])
    },
  )

  app.get(
    '/v1/time',
    {
      schema: {
        tags: ['public'],
        summary: "The server's clock, for a countdown that does not trust the phone's",
        description:
          'The event page measures its offset from this answer and the round trip, taking the fastest of a few tries.',
        security: routeSecurity.public,
        response: { 200: TimeOut },
      },
    },
    async (_request, reply) =>
      reply.header('cache-control', 'no-store').send({ now: await opts.now() }),
  )
}
