/**
 * The one error handler: every failure leaves as `{code, message}` with the status
 * of `codeToStatus`. Internal details go to the log, never to the client.
 */
import type {
  FastifyBaseLogger,
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
} from 'fastify'
import { AppError, codeToStatus, type ErrorCode, UnavailableError } from '../domain/errors.js'

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 1

/** Fastify's own error codes for a request it could not read. */
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'VALIDATION_FAILED',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_CTP_INVALID_JSON_BODY: 'VALIDATION_FAILED',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
}

const fallbackMessages: Partial<Record<ErrorCode, string>> = {
  PAYLOAD_TOO_LARGE: 'The request body is too large.',
  UNSUPPORTED_MEDIA_TYPE: 'Request bodies must be JSON (Content-Type: application/json).',
}

interface Classified {
  code: ErrorCode
  message: string
}

export function classify(error: FastifyError | Error): Classified | null {
  if (error instanceof AppError) return { code: error.code, message: error.message }
  const fe = error as FastifyError
  if (fe.validation) return { code: 'VALIDATION_FAILED', message: fe.message }
  const mapped = fastifyCodes[fe.code]
  if (mapped) return { code: mapped, message: fallbackMessages[mapped] ?? fe.message }
  // JSON.parse and secure-json-parse (__proto__ / constructor keys) failures.
  if (error instanceof SyntaxError || fe.statusCode === 400) {
    return {
      code: 'VALIDATION_FAILED',
      message: `The request body is not valid JSON: ${fe.message}`,
    }
  }
  if (fe.statusCode === 429) return { code: 'RATE_LIMITED', message: fe.message }
  if (fe.statusCode === 404) return { code: 'NOT_FOUND', message: 'No such route.' }
  return null
}

/**
 * The router's own refusals, answered before any route or error handler runs: a
 * path that is not valid percent-encoding, or a path parameter longer than the
 * router takes. Fastify's default bodies for these are of another shape and echo
 * the whole path back. (Fastify's `frameworkErrors` option.)
 */
export function frameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  const message =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? 'A path parameter is too long.'
      : error.code === 'FST_ERR_BAD_URL'
        ? 'The URL path is not valid.'
        : null
  if (message)
    return reply.code(codeToStatus.VALIDATION_FAILED).send({ code: 'VALIDATION_FAILED', message })
  return reply.code(500).send(INTERNAL_ERROR)
}

/** What the client is told about a failure: status, extra headers, `{code, message}`. */
export interface ErrorAnswer {
  status: number
  headers: Record<string, string>
  body: { readonly code: ErrorCode; readonly message: string }
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>
const RETRY_HEADERS = Object.freeze({ 'retry-after': String(RETRY_AFTER_SECONDS) })

/** The body of a request refused once the app has begun to close. */
export const SHUTTING_DOWN = Object.freeze({
  code: 'UNAVAILABLE',
  message: 'The server is shutting down; retry shortly.',
} as const)

/** The body of every 500: nothing about what went wrong. */
export const INTERNAL_ERROR = Object.freeze({ code: 'INTERNAL', message: 'Internal server error.' })

/** The log line of a request answered 503 because a backing service is down. */
export function logUnavailable(log: FastifyBaseLogger, error: UnavailableError): void {
  log.warn(
    { err: error.cause, service: error.service, reason: error.reason },
    'backing service unavailable',
  )
}

/** The process is out of descriptors: it will pass once connections close, so 503. */
const EXHAUSTED = new Set(['EMFILE', 'ENFILE'])

/**
 * A database or Redis error reaches here already as UnavailableError when it is
 * the service's trouble (the database layer classifies its own: src/db/errors.ts);
 * only the process's own shortage is judged here.
 */
function unavailableOf(error: Error): Error {
  if (EXHAUSTED.has(String((error as { code?: unknown }).code)))
    return new UnavailableError('server resources', error)
  return error
}

/**
 * Maps anything thrown while answering to the client's answer, and logs what the
 * client is not told. Shared by the error handler and the issue fast lane.
 */
export function errorAnswer(thrown: FastifyError | Error, log: FastifyBaseLogger): ErrorAnswer {
  const error = unavailableOf(thrown)
  if (error instanceof UnavailableError) {
    logUnavailable(log, error)
    return {
      status: codeToStatus.UNAVAILABLE,
      headers: RETRY_HEADERS,
      body: {
        code: 'UNAVAILABLE',
        message: `The service is temporarily unavailable (${error.service}); retry shortly.`,
      },
    }
  }
  const known = classify(error)
  if (known) return { status: codeToStatus[known.code], headers: NO_HEADERS, body: known }
  log.error({ err: error }, 'unhandled error')
  return { status: 500, headers: NO_HEADERS, body: INTERNAL_ERROR }
}

export function registerErrorHandling(app: FastifyInstance) {
  app.setErrorHandler((thrown: FastifyError | Error, request, reply) => {
    const answer = errorAnswer(thrown, request.log)
    return reply.code(answer.status).headers(answer.headers).send(answer.body)
  })

  app.setNotFoundHandler((request, reply) => {
    const path = (request.url.split('?')[0] ?? '').slice(0, 200)
    reply.code(404).send({ code: 'NOT_FOUND', message: `No route ${request.method} ${path}.` })
  })
}
