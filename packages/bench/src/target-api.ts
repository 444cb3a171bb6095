/** The few calls the bench makes to the service around the load (not on its path). */
import type { CouponStats } from './service.js'

export type { CouponStats }

async function call(url: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(url, init)
  const text = await res.text()
  if (!res.ok)
    throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text)
}

/** A coupon open from a minute ago until well after the run; `null` quantity = unlimited. */
export async function createCoupon(
  baseUrl: string,
  adminToken: string,
  quantity: number | null,
  openForMs: number,
): Promise<number> {
  const now = Date.now()
  const coupon = (await call(`${baseUrl}/v1/coupons`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      title: quantity === null ? 'bench: unlimited' : `bench: ${quantity}`,
      totalQuantity: quantity,
      discountAmount: 1000,
      minAvailableAmount: 0,
      issueStart: new Date(now - 60_000).toISOString(),
      issueEnd: new Date(now + openForMs).toISOString(),
    }),
  })) as { id: number }
  return coupon.id
}

/** `{"generate": n}` uploads, at most a million codes each (the route's limit). */
export async function generateCodes(
  baseUrl: string,
  adminToken: string,
  couponId: number,
  n: number,
): Promise<void> {
  for (let left = n; left > 0; left -= 1_000_000) {
    await call(`${baseUrl}/v1/coupons/${couponId}/codes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ generate: Math.min(left, 1_000_000) }),
    })
  }
}

export async function couponStats(baseUrl: string, couponId: number): Promise<CouponStats> {
  return (await call(`${baseUrl}/v1/coupons/${couponId}/stats`)) as CouponStats
}

export interface Drain {
  stats: CouponStats
  drained: boolean
  /** from the end of the load until `queued` was 0 (or the bench gave up) */
  ms: number
}

/** Polls the stats until nothing is queued: every win the gate granted is a row. */
export async function waitDrained(
  baseUrl: string,
  couponId: number,
  timeoutMs: number,
  since: number,
): Promise<Drain> {
  for (;;) {
    const stats = await couponStats(baseUrl, couponId)
    const ms = Date.now() - since
    if (stats.queued === 0) return { stats, drained: true, ms }
    if (ms > timeoutMs) return { stats, drained: false, ms }
    await new Promise((r) => setTimeout(r, 50))
  }
}
