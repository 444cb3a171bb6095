/**
 * Admin auth (a static bearer token) and user auth (a JWT whose `sub` is the user).
 */
import { createPublicKey, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto'
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

/** Does the request carry the admin token? (compared in constant time) */
function adminCheck(adminToken: string) {
  const expected = Buffer.from(adminToken)
  return (request: HasHeaders) => {
    const token = bearer(request)
    const given = token === null ? null : Buffer.from(token)
    return !!given && given.length === expected.length && timingSafeEqual(given, expected)
  }
}

export function adminGuard(adminToken: string) {
  const isAdmin = adminCheck(adminToken)
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

/**
 * Who may act on a user's own coupons (spend, give back, list): the admin token
 * (the order service), or with user auth on the user's own token (`sub` = the
 * path's user, else 403); with user auth off, anyone, as on the issue route.
 */
export function ownerOrAdmin(adminToken: string, verify: UserVerifier | null) {
  const isAdmin = adminCheck(adminToken)
  return async (request: HasHeaders, userId: string): Promise<void> => {
    if (!verify || isAdmin(request)) return
    if ((await verify(request)) !== userId) {
      throw new AppError('FORBIDDEN', "Only the user's own token (or the admin's) may do this.")
    }
  }
}
