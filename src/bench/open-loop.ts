/**
 * A fixed offered rate (an open loop). Requests fall due on the schedule whether
 * or not the server keeps up; each waits for a free connection (opening one, up to
 * the connection limit) and its latency runs from its due time. A request still
 * waiting when its timeout has passed counts as a timeout without being sent.
 * After the duration nothing new falls due; what is queued or in flight is
 * finished (or times out), so a stall at the end is charged too.
 */

import type { LoopOptions } from './closed-loop.js'
import { Connection, type ConnectionEvents } from './connection.js'
import type { OpenLoopSchedule } from './schedule.js'

/** How often due requests are released: the finest timer Node offers. */
const PUMP_MS = 1
const SWEEP_EVERY_PUMPS = 50

export function runOpenLoop(o: LoopOptions & { schedule: OpenLoopSchedule }): Promise<void> {
  return new Promise((resolve) => {
    const { schedule, recorder } = o
    const all: Connection[] = []
    const idle: Connection[] = []
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

    const events: ConnectionEvents = {
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
    }

    const finished = () => enqueued >= schedule.total && head >= queue.length && inFlight === 0

    const pump = () => {
      const now = performance.now()
      for (const due = schedule.dueBy(now - o.t0); enqueued < due; enqueued++) {
        queue.push(o.t0 + schedule.at(enqueued))
      }
      expireQueued(now)
      while (head < queue.length) {
        let c = idle.pop()
        if (!c && all.length < o.connections) {
          c = new Connection(o.target, events)
          all.push(c)
        }
        if (!c) break
        dispatch(c, queue[head++] as number)
      }
      if (head > 4096 && head * 2 > queue.length) {
        queue = queue.slice(head)
        head = 0
      }
      if (++pumps % SWEEP_EVERY_PUMPS === 0) {
        recorder.tick(now)
        for (const c of all) {
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
        for (const c of all) c.close()
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
