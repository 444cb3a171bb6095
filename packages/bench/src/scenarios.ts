/**
 * The four loads, as plain data a client process can receive, and what each
 * means as HTTP requests:
 *   seed   — the original Locust run: random users in a range, one limited coupon
 *   win    — an unlimited coupon and a new user on every request (the win path)
 *   compat — the original's `POST /v2/issue-async {"userId", "couponId"}`
 *   draw   — random users entering a coupon's opening draw (202 each), before
 *            its drawAt; the draw follows the load (run.ts, draw.ts)
 */
import type { Target } from './connection.js'
import { requestPrefix, withBody } from './http1.js'
import { type Expectation, expectationFor } from './outcomes.js'
import { type IdSource, randomIds, sequentialIds, type UserIdRange } from './user-ids.js'

export const SCENARIOS = ['seed', 'win', 'compat', 'draw'] as const
export type ScenarioName = (typeof SCENARIOS)[number]

export type UserPlan = ({ kind: 'random' } & UserIdRange) | { kind: 'sequential'; start: number }

/** Everything one client process needs to load the target; crosses process boundaries. */
export interface LoadPlan {
  target: Target
  scenario: ScenarioName
  couponId: number
  users: UserPlan
  /** this process's connections (closed loop), or its connection limit (open loop) */
  connections: number
  durationMs: number
  /** closed loop: connections are opened evenly over this long (0 = all at once) */
  rampMs: number
  /** the offered rate of ALL processes together (open loop); null = closed loop */
  rate: number | null
  timeoutMs: number
  /** this process is `part` of `of` */
  part: number
  of: number
  /** winners to report back for the no-loss check */
  maxWinners: number
}

function hostOf(plan: LoadPlan): string {
  const { host, port } = plan.target
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** What an open loop sends once on each connection before the load: GET /healthz. */
export function primingRequest(plan: LoadPlan): string {
  return requestPrefix({ method: 'GET', path: '/healthz', host: hostOf(plan) })
}

export function requestBuilder(plan: LoadPlan): (userId: number) => string {
  const host = hostOf(plan)
  if (plan.scenario === 'compat') {
    const prefix = requestPrefix({ method: 'POST', path: '/v2/issue-async', host })
    const tail = `,"couponId":${plan.couponId}}`
    return (userId) => withBody(prefix, `{"userId":${userId}${tail}`)
  }
  const prefix = requestPrefix({
    method: 'POST',
    path: `/v1/coupons/${plan.couponId}/issues`,
    host,
  })
  return (userId) => withBody(prefix, `{"userId":${userId}}`)
}

export function idSource(plan: LoadPlan): IdSource {
  return plan.users.kind === 'random'
    ? randomIds(plan.users, plan.part, plan.of)
    : sequentialIds(plan.users.start, plan.part, plan.of)
}

export function expectation(plan: LoadPlan): Expectation {
  return expectationFor(plan.scenario)
}
