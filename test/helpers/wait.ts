/**
 * Waiting on a condition with a deadline. A test that needs something to have
 * happened (a drain, a log line, a failed pass) polls for it here instead of
 * sleeping a fixed time and hoping: it goes on as soon as the condition holds,
 * and on a slow machine it waits longer instead of failing.
 */
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Polls `probe` every `everyMs` until it returns a truthy value, and returns it.
 * A probe that throws counts as not yet; past `timeoutMs` it fails naming `what`
 * (and the probe's last error, if any).
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown = null
  for (;;) {
    try {
      const value = await probe()
      if (value) return value
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError })
    }
    await sleep(everyMs)
  }
}

/**
 * What `promise` gives, or `otherwise` if it has not settled within `ms`. The
 * timer is cleared once the race is decided: left running, it would keep the
 * file's process alive for the rest of its `ms`.
 */
export async function within<T, U>(promise: Promise<T>, ms: number, otherwise: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<U>((resolve) => {
        timer = setTimeout(resolve, ms, otherwise)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
