/**
 * Looping connections (a closed loop, like Locust users): each connection sends a
 * request, waits for the answer, and sends the next at once. Latency is measured
 * from the moment the request was issued, so the first request of a connection
 * also pays for its connect and for its wait in the server's accept queue. At the end of the duration nothing new is sent and
 * the requests in flight are awaited (or time out), so the last second's tail is
 * counted too.
 */
import { Connection, type ConnectionEvents, type Target } from './connection.js'
import type { Recorder } from './recorder.js'

export interface LoopOptions {
  target: Target
  connections: number
  /** performance-clock ms at which the load starts */
  t0: number
  durationMs: number
  timeoutMs: number
  /** closed loop: open the connections evenly over this long (0 = all at once) */
  rampMs: number
  recorder: Recorder
  /** picks the next user and returns the full request text */
  next: () => { userId: number; request: string }
}

/** A connection that failed waits this long before its user tries again. */
const RETRY_AFTER_FAILURE_MS = 100
/** How often in-flight requests are checked against their deadline. */
const SWEEP_MS = 100

export function runClosedLoop(o: LoopOptions): Promise<void> {
  return new Promise((resolve) => {
    const stopAt = o.t0 + o.durationMs
    const conns: Connection[] = []
    let active = o.connections
    let sweeper: NodeJS.Timeout | null = null

    const retire = (c: Connection) => {
      c.close()
      if (--active === 0) {
        if (sweeper) clearInterval(sweeper)
        resolve()
      }
    }

    const issue = (c: Connection, now: number) => {
      if (now >= stopAt) return retire(c)
      const { userId, request } = o.next()
      c.userId = userId
      c.startedAt = now
      c.deadline = now + o.timeoutMs
      o.recorder.sent(userId)
      c.send(request)
    }

    const events: ConnectionEvents = {
      response(c, status, prefix) {
        const now = performance.now()
        o.recorder.response(now, now - c.startedAt, status, prefix, c.userId, c.fresh)
        issue(c, now)
      },
      failed(c, error) {
        o.recorder.failure(performance.now(), 'connection', error)
        // A refused connection must not turn into a busy loop of failures.
        setTimeout(() => issue(c, performance.now()), RETRY_AFTER_FAILURE_MS)
      },
    }

    sweeper = setInterval(() => {
      const now = performance.now()
      o.recorder.tick(now)
      for (const c of conns) {
        if (c.busy && now > c.deadline) {
          c.abort()
          o.recorder.failure(now, 'timeout')
          issue(c, now)
        }
      }
    }, SWEEP_MS)

    const open = () => {
      const c = new Connection(o.target, events)
      conns.push(c)
      issue(c, performance.now())
    }
    const start = () => {
      if (o.rampMs <= 0) {
        for (let i = 0; i < o.connections; i++) open()
        return
      }
      // Like Locust's spawn rate: connection i starts at i × ramp / connections.
      let opened = 0
      const ramp = setInterval(() => {
        const due = Math.min(
          o.connections,
          Math.floor(((performance.now() - o.t0) * o.connections) / o.rampMs) + 1,
        )
        while (opened < due) {
          open()
          opened++
        }
        if (opened >= o.connections) clearInterval(ramp)
      }, 5)
    }
    const wait = o.t0 - performance.now()
    if (wait > 0) setTimeout(start, wait)
    else start()
  })
}
