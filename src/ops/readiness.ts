/**
 * Readiness checks, run with a bound on each, and remembered for a second so
 * scrapes and dashboards asking at once cost one round of pings.
 */

/** Named readiness checks; each resolves when its backing service answers. */
export type ReadinessChecks = Record<string, () => Promise<void>>

const CHECK_TIMEOUT_MS = 2000
const FRESH_MS = 1000

function withTimeout(check: () => Promise<void>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS)
    check()
      .then(
        () => resolve(true),
        () => resolve(false),
      )
      .finally(() => clearTimeout(timer))
  })
}

export class Readiness {
  readonly checks: ReadinessChecks
  #last: { at: number; result: Promise<Record<string, boolean>> } | null = null

  constructor(checks: ReadinessChecks) {
    this.checks = checks
  }

  /**
   * Each dependency up (true) or not, at most `maxAgeMs` old (/readyz asks for a
   * fresh answer: a load balancer must see a recovery at once).
   */
  state(maxAgeMs = FRESH_MS): Promise<Record<string, boolean>> {
    const now = Date.now()
    if (this.#last && now - this.#last.at < maxAgeMs) return this.#last.result
    const names = Object.keys(this.checks)
    const result = Promise.all(
      names.map((n) => withTimeout(this.checks[n] as () => Promise<void>)),
    ).then((up) => Object.fromEntries(names.map((n, i) => [n, up[i] as boolean])))
    this.#last = { at: now, result }
    return result
  }
}
