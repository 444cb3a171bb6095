/**
 * A fixed offered rate (an open loop). Like wrk2, the connections are opened
 * first, each answering one GET /healthz, so the measured latency is the
 * server's at that rate rather than connection set-up (a flash crowd's connects
 * are what the closed loop measures). Then requests fall due on the schedule
 * whether or not the server keeps up; each takes the connection idle longest
 * (opening another, up to the limit, when none is idle) and its latency runs from
 * its due time. A request still waiting when its timeout has passed counts as a
 * timeout without being sent. After the duration nothing new falls due; what is
 * queued or in flight is finished (or times out), so a stall at the end is
 * charged too.
 */

import type { LoopOptions } from './closed-loop.js'
import { Connection, type ConnectionEvents, type Target } from './connection.js'
import type { OpenLoopSchedule } from './schedule.js'

/** How often due requests are released: the finest timer Node offers. */
const PUMP_MS = 1
const SWEEP_EVERY_PUMPS = 50

/** The open loop's connections; their events go to whoever uses them now. */
export class ConnectionPool {
  readonly all: Connection[] = []
  readonly #target: Target
  #handler: ConnectionEvents | null = null
  readonly #events: ConnectionEvents = {
    response: (c, status, prefix) => this.#handler?.response(c, status, prefix),
    failed: (c, error) => this.#handler?.failed(c, error),
  }

  constructor(target: Target) {
    this.#target = target
  }

  add(): Connection {
    const c = new Connection(this.#target, this.#events)
    this.all.push(c)
    return c
  }

  handle(events: ConnectionEvents): void {
    this.#handler = events
  }

  /**
   * Opens `count` connections and sends `request` on each; resolves with how many
   * answered once all have, or after `timeoutMs` (the rest are dropped and reopen
   * when first used).
   */
  prime(count: number, request: string, timeoutMs: number): Promise<number> {
    return new Promise((resolve) => {
      let pending = count
      let answered = 0
      const finish = () => {
        clearTimeout(timer)
        this.#handler = null
        resolve(answered)
      }
      const timer = setTimeout(() => {
        for (const c of this.all) if (c.busy) c.abort()
        finish()
      }, timeoutMs)
      const settle = () => {
        if (--pending === 0) finish()
      }
      this.handle({
        response: () => {
          answered++
          settle()
        },
        failed: settle,
      })
      if (count === 0) finish()
      for (let i = 0; i < count; i++) this.add().send(request)
    })
  }
}

export function runOpenLoop(
  o: LoopOptions & { schedule: OpenLoopSchedule; pool: ConnectionPool },
): Promise<void> {
  return new Promise((resolve) => {
    const { schedule, recorder, pool } = o
    // Idle connections, longest idle first (FIFO), so the load spreads over all of them.
    let idle: Connection[] = pool.all.filter((c) => !c.busy)
    let idleHead = 0
    // Due times of requests waiting for a connection (performance-clock ms), FIFO.
    let queue: number[] = []
    let head = 0
    let enqueued = 0
    let pumps = 0
    let inFlight = 0
    let timer: NodeJS.Timeout | null = null

    const dispatch = (c: Connection, dueAt: number) => {
      const { userId, request } = o.next()
      c.userId = userId
      c.startedAt = dueAt
      c.deadline = dueAt + o.timeoutMs
      recorder.sent(userId)
      inFlight++
      c.send(request)
    }

    const release = (c: Connection, now: number) => {
      expireQueued(now)
      const dueAt = queue[head]
      if (dueAt === undefined) idle.push(c)
      else {
        head++
        dispatch(c, dueAt)
      }
    }

    const expireQueued = (now: number) => {
      for (let dueAt = queue[head]; dueAt !== undefined && now - dueAt > o.timeoutMs; ) {
        head++
        recorder.failure(now, 'timeout')
        dueAt = queue[head]
      }
    }

    pool.handle({
      response(c, status, prefix) {
        const now = performance.now()
        inFlight--
        recorder.response(now, now - c.startedAt, status, prefix, c.userId, c.fresh)
        release(c, now)
      },
      failed(c, error) {
        const now = performance.now()
        inFlight--
        recorder.failure(now, 'connection', error)
        release(c, now)
      },
    })

    const finished = () => enqueued >= schedule.total && head >= queue.length && inFlight === 0

    const pump = () => {
      const now = performance.now()
      for (const due = schedule.dueBy(now - o.t0); enqueued < due; enqueued++) {
        queue.push(o.t0 + schedule.at(enqueued))
      }
      expireQueued(now)
      while (head < queue.length) {
        let c = idle[idleHead]
        if (c) idleHead++
        else if (pool.all.length < o.connections) c = pool.add()
        if (!c) break
        dispatch(c, queue[head++] as number)
      }
      if (head > 4096 && head * 2 > queue.length) {
        queue = queue.slice(head)
        head = 0
      }
      if (idleHead > 4096 && idleHead * 2 > idle.length) {
        idle = idle.slice(idleHead)
        idleHead = 0
      }
      if (++pumps % SWEEP_EVERY_PUMPS === 0) {
        recorder.tick(now)
        for (const c of pool.all) {
          if (c.busy && now > c.deadline) {
            c.abort()
            inFlight--
            recorder.failure(now, 'timeout')
            release(c, now)
          }
        }
      }
      if (finished()) {
        if (timer) clearInterval(timer)
        for (const c of pool.all) c.close()
        resolve()
      }
    }

    const start = () => {
      timer = setInterval(pump, PUMP_MS)
      pump()
    }
    const wait = o.t0 - performance.now()
    if (wait > 0) setTimeout(start, wait)
    else start()
  })
}
