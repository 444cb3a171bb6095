/**
 * Admin auth and the shop backends' service token (static bearer tokens), user
 * auth (a JWT whose `sub` is the user), who may act after the win, and each
 * kind of route's OpenAPI security.
 */
import {
  createHash,
  createPublicKey,
  createSecretKey,
  type KeyObject,
  timingSafeEqual,
} from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { jwtVerify } from 'jose'
import type { Config } from '../config.js'
import { AppError } from '../domain/errors.js'
import { normaliseUserId } from '../domain/user-id.js'

/** A Fastify request or a bare node:http one (the issue fast lane): auth reads headers only. */
export interface HasHeaders {
  headers: IncomingHttpHeaders
}

function bearer(request: HasHeaders): string | null {
  const header = request.headers.authorization
  if (!header || header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return null
  return header.slice(7).trim()
}

const digest = (token: string) => createHash('sha256').update(token).digest()

/**
 * Does the request carry one of these tokens? Compared in constant time: digests
 * of equal length, every token compared, so neither the time nor an early exit
 * tells how much of a guess was right.
 */
export function tokenCheck(tokens: readonly string[]) {
  const expected = tokens.map(digest)
  return (request: HasHeaders) => {
    const token = bearer(request)
    if (token === null) return false
    const given = digest(token)
    let match = false
    for (const e of expected) match = timingSafeEqual(given, e) || match
    return match
  }
}

export function adminGuard(adminToken: string) {
  const isAdmin = tokenCheck([adminToken])
  return async (request: FastifyRequest) => {
    if (!isAdmin(request)) {
      throw new AppError(
        'UNAUTHORIZED',
        'A valid admin token is required (Authorization: Bearer <ADMIN_TOKEN>).',
      )
    }
  }
}

/** Verifies a user JWT and returns its subject as a userId. */
export type UserVerifier = (request: HasHeaders) => Promise<string>

const algorithmsByKeyType: Record<string, string[]> = {
  rsa: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
  'rsa-pss': ['PS256', 'PS384', 'PS512'],
  ec: ['ES256', 'ES384', 'ES512'],
  ed25519: ['EdDSA'],
  ed448: ['EdDSA'],
}

export function userVerifier(jwt: NonNullable<Config['jwt']>): UserVerifier {
  let key: KeyObject
  let algorithms: string[]
  if ('secret' in jwt) {
    key = createSecretKey(Buffer.from(jwt.secret))
    algorithms = ['HS256', 'HS384', 'HS512']
  } else {
    key = createPublicKey(jwt.publicKey)
    algorithms = algorithmsByKeyType[key.asymmetricKeyType ?? ''] ?? []
  }
  return async (request) => {
    const token = bearer(request)
    if (!token)
      throw new AppError('UNAUTHORIZED', 'A user token is required (Authorization: Bearer <jwt>).')
    let sub: unknown
    try {
      ;({
        payload: { sub },
      } = await jwtVerify(token, key, { algorithms }))
    } catch {
      throw new AppError('UNAUTHORIZED', 'The user token is invalid or expired.')
    }
    const userId = normaliseUserId(sub)
    if (!userId) throw new AppError('UNAUTHORIZED', 'The user token has no usable subject (sub).')
    return userId
  }
}

/** The acting user: the token's subject when user auth is on, else the body's userId. */
export async function actingUser(
  request: HasHeaders,
  verify: UserVerifier | null,
  claimed: unknown,
): Promise<string> {
  if (!verify) {
    const userId = normaliseUserId(claimed)
    if (!userId) throw new AppError('VALIDATION_FAILED', 'userId is required')
    return userId
  }
  const userId = await verify(request)
  if (claimed !== undefined && normaliseUserId(claimed) !== userId) {
    throw new AppError('FORBIDDEN', 'The userId does not match the token.')
  }
  return userId
}

export interface SpenderTokens {
  adminToken: string
  /** SERVICE_TOKEN: the shop's order and account backends; null: none */
  serviceToken: string | null
  /** user auth (null: off) */
  verifyUser: UserVerifier | null
}

/**
 * Who may act on a user's coupons after the win (spend, give back, list): the
 * service token, the admin token, or with user auth on the user's own token
 * (`sub` = the path's user). No token, or one that is none of these, is 401;
 * another user's valid token is 403. With user auth off there are no user
 * tokens: only the service and admin tokens pass. Never open to anonymous
 * callers, whatever the user-auth setting.
 */
/** The service token or the admin token. */
function trustedCheck(tokens: SpenderTokens) {
  return tokenCheck(
    tokens.serviceToken === null ? [tokens.adminToken] : [tokens.adminToken, tokens.serviceToken],
  )
}

export function spenderGuard(tokens: SpenderTokens) {
  const trusted = trustedCheck(tokens)
  const verify = tokens.verifyUser
  return async (request: FastifyRequest): Promise<void> => {
    if (bearer(request) === null) {
      throw new AppError(
        'UNAUTHORIZED',
        verify
          ? "A token is required: the service token, the admin token or the user's own."
          : 'A token is required: the service token or the admin token.',
      )
    }
    if (trusted(request)) return
    if (!verify) {
      throw new AppError(
        'UNAUTHORIZED',
        'The token is neither the service token nor the admin token.',
      )
    }
    const path = request.params as { userId?: unknown } // the routes' :userId
    if ((await verify(request)) !== normaliseUserId(path.userId)) {
      throw new AppError('FORBIDDEN', "Only the user's own token (or a service's) may do this.")
    }
  }
}

/** Who asks for a user's coupon, and whether the answer may carry its partner code. */
export interface StatusReader {
  userId: string
  withCode: boolean
}

/**
 * Who asks for a user's coupon (`GET …/issues/{userId}`), and may they see its
 * partner code? Only the callers allowed to spend it may (see spenderGuard):
 * the service and admin tokens, for any user, whatever the user-auth setting;
 * with user auth on, the user's own token (another user's is 403, no token 401,
 * as the route always answered). With user auth off a caller without a token is
 * answered without the code; one with a token that is none of these is 401, not
 * quietly answered as if it had sent none.
 */
export function statusReader(tokens: SpenderTokens) {
  const trusted = trustedCheck(tokens)
  const verify = tokens.verifyUser
  return async (request: FastifyRequest, pathUserId: string): Promise<StatusReader> => {
    const token = bearer(request) !== null
    if (token && trusted(request)) return { userId: pathUserId, withCode: true }
    if (verify) return { userId: await actingUser(request, verify, pathUserId), withCode: true }
    if (token) {
      throw new AppError(
        'UNAUTHORIZED',
        'The token is neither the service token nor the admin token (or send none).',
      )
    }
    return { userId: await actingUser(request, null, pathUserId), withCode: false }
  }
}

/** The bearer schemes of the OpenAPI document (components.securitySchemes, in app.ts). */
type SecurityScheme = 'adminToken' | 'serviceToken' | 'userToken'
type Security = Record<string, string[]>[]
const anyOf = (...schemes: SecurityScheme[]): Security => schemes.map((s) => ({ [s]: [] }))

/** The OpenAPI security requirement of each kind of route: any one scheme listed passes. */
export const routeSecurity = {
  /** no token */
  public: anyOf(),
  admin: anyOf('adminToken'),
  /** the issue and status routes: no token, or the user's own with user auth on */
  user: (userAuth: boolean) => (userAuth ? anyOf('userToken') : anyOf()),
  /** a user's coupon: as `user`, or the service or admin token (which see its code) */
  status: (userAuth: boolean) =>
    userAuth
      ? anyOf('userToken', 'serviceToken', 'adminToken')
      : [{}, ...anyOf('serviceToken', 'adminToken')],
  /** spend, give back, the coupon box: see spenderGuard */
  spender: (userAuth: boolean) =>
    userAuth
      ? anyOf('serviceToken', 'adminToken', 'userToken')
      : anyOf('serviceToken', 'adminToken'),
}
