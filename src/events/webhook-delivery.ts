/**
 * One webhook POST: the signature, the time limit, no redirects; and which URLs
 * an endpoint may have (http or https, a host on WEBHOOK_ALLOWED_HOSTS).
 *
 * Signature (as Stripe's): `Firstcome-Signature: t=<unix seconds>,v1=<hex>`
 * where hex = HMAC-SHA256(secret, `${t}.${body}`). A receiver recomputes it over
 * the raw body, compares in constant time and refuses a `t` too old (replays).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { Agent, request } from 'undici'

export const SIGNATURE_HEADER = 'firstcome-signature'

export function sign(secret: string, body: string, t: number): string {
  const hex = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')
  return `t=${t},v1=${hex}`
}

/**
 * What a receiver does (docs/events.md has it as a sample): true when the header
 * carries a v1 signature of the body with the secret, made within `toleranceS`.
 */
export function verifySignature(
  secret: string,
  body: string,
  header: string | undefined,
  toleranceS = 300,
  nowS = Math.floor(Date.now() / 1000),
): boolean {
  if (!header) return false
  const parts = new Map<string, string[]>()
  for (const item of header.split(',')) {
    const i = item.indexOf('=')
    if (i < 0) continue
    const k = item.slice(0, i).trim()
    parts.set(k, [...(parts.get(k) ?? []), item.slice(i + 1).trim()])
  }
  const t = Number(parts.get('t')?.[0])
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS) return false
  const expected = Buffer.from(
    createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'),
    'utf8',
  )
  return (parts.get('v1') ?? []).some((v) => {
    const given = Buffer.from(v, 'utf8')
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}

/** A secret for an endpoint registered without one. */
export function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`
}

/**
 * WEBHOOK_ALLOWED_HOSTS: comma-separated hosts, `host` (any port), `host:port`,
 * or `*.example.com` (any subdomain). null (unset): every host.
 */
export type HostAllowList = readonly string[] | null

export function parseAllowedHosts(raw: string | null): HostAllowList {
  if (raw === null) return null
  return raw
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '')
}

/** Why a webhook URL is refused; null: it is fine. */
export function urlProblem(raw: string, allowed: HostAllowList): string | null {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'url must be an absolute http:// or https:// URL'
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return 'url must be an http:// or https:// URL'
  }
  if (url.username || url.password) return 'url must not carry credentials'
  if (url.hash) return 'url must not have a fragment'
  if (!hostAllowed(url, allowed)) {
    return `host ${url.host} is not on WEBHOOK_ALLOWED_HOSTS`
  }
  return null
}

function hostAllowed(url: URL, allowed: HostAllowList): boolean {
  if (allowed === null) return true
  const host = unbracket(url.hostname)
  const port = url.port || (url.protocol === 'https:' ? '443' : '80')
  return allowed.some((entry) => {
    const { name, port: only } = entryOf(entry)
    if (only !== null && only !== port) return false
    if (name.startsWith('*.')) return host.endsWith(name.slice(1))
    return host === name
  })
}

const unbracket = (host: string) => host.replace(/^\[|\]$/g, '')

/**
 * An allow-list entry: its host as a URL writes it (`127.1` is `127.0.0.1`,
 * an IPv6 address without brackets, in its short form) and its port (null: any).
 * IPv6 with a port is bracketed (`[::1]:9000`); bare, it has no port (`::1`).
 */
function entryOf(entry: string): { name: string; port: string | null } {
  const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(entry)
  const v6 = bracketed !== null || entry.indexOf(':') !== entry.lastIndexOf(':')
  const [name = '', port = null] = bracketed
    ? [bracketed[1], bracketed[2]]
    : v6
      ? [entry]
      : entry.split(':')
  if (name.startsWith('*.')) return { name, port }
  try {
    return { name: unbracket(new URL(`http://${v6 ? `[${name}]` : name}`).hostname), port }
  } catch {
    return { name, port } // matches no URL's host
  }
}

export interface PostOutcome {
  ok: boolean
  /** the HTTP status (null: none: refused, timed out, reset) */
  status: number | null
  /** what went wrong, for last_error */
  error: string | null
}

/**
 * POSTs to the endpoints over connections kept alive between POSTs (each
 * endpoint gets one POST at a time, so one connection each). undici's request,
 * not fetch: no WHATWG objects per POST, redirects never followed, and an idle
 * connection is dropped before a receiver's keep-alive timeout could reset it
 * under a POST.
 */
export class WebhookPoster {
  readonly #connections = new Agent({ keepAliveTimeout: 4000, keepAliveMaxTimeout: 30_000 })

  /** POSTs a signed body; never follows a redirect; gives up after `timeoutMs`. */
  async post(
    url: string,
    body: string,
    secret: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<PostOutcome> {
    const t = Math.floor(Date.now() / 1000)
    try {
      const res = await request(url, {
        method: 'POST',
        body,
        dispatcher: this.#connections,
        // Connect and answer together.
        signal: AbortSignal.timeout(timeoutMs),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'firstcome-webhooks/1',
          [SIGNATURE_HEADER]: sign(secret, body, t),
          ...headers,
        },
      })
      await res.body.dump().catch(() => {})
      const status = res.statusCode
      if (status >= 200 && status < 300) return { ok: true, status, error: null }
      if (status >= 300 && status < 400) {
        return { ok: false, status, error: `redirect (${status}) not followed` }
      }
      return { ok: false, status, error: `HTTP ${status}` }
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } }
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        return { ok: false, status: null, error: `no answer within ${timeoutMs} ms` }
      }
      return {
        ok: false,
        status: null,
        error: e.code ?? e.cause?.code ?? e.cause?.message ?? e.message,
      }
    }
  }

  /** Closes the connections (a POST in flight is cut). */
  async close(): Promise<void> {
    await this.#connections.destroy().catch(() => {})
  }
}
