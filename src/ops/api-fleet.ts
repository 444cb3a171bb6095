/**
 * Every live API process's figures, for the dashboard's overview, whichever
 * process answers it. In Redis mode each API process publishes its own figures
 * every PUBLISH_MS with a time to live (FleetStore), and the overview reads all
 * that are live: every process in every container or pod, without knowing where
 * they run; one that dies drops out once its entry expires. Embedded mode is
 * one process: its own figures, read when asked.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { ProcessFigures } from './process-figures.js'

/** How often an API process publishes its figures. */
export const PUBLISH_MS = 1000
/** How long published figures stay live: a process silent this long is gone. */
export const LIVE_MS = 3000

/** One live API process's figures, and which process it is. */
export interface ProcessShare {
  id: string
  figures: ProcessFigures
}

/** Where the API processes' figures meet (Redis mode). */
export interface FleetStore {
  /** Stores this process's figures, live for `ttlMs`. */
  publish(id: string, figures: ProcessFigures, ttlMs: number): Promise<void>
  /** The figures of every process whose entry is live. */
  live(): Promise<ProcessShare[]>
  /** Removes this process's entry (it stops). */
  leave(id: string): Promise<void>
}

export interface ApiFleetOptions {
  /** this process's figures now */
  read: () => Promise<ProcessFigures>
  /** null: embedded mode, this process is the whole fleet */
  store: FleetStore | null
  /** a failed publish (Redis unreachable): the overview's health says so already */
  onError?: (err: unknown) => void
}

export class ApiFleet {
  /** unique per process start, so a restarted process never adds to its old entry */
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  readonly #o: ApiFleetOptions
  #timer: NodeJS.Timeout | null = null
  #publishing: Promise<void> = Promise.resolve()

  constructor(options: ApiFleetOptions) {
    this.#o = options
  }

  /** This process serves the API: from now on it publishes its figures (Redis mode). */
  start(): void {
    if (!this.#o.store || this.#timer) return
    this.#publish()
    this.#timer = setInterval(() => this.#publish(), PUBLISH_MS).unref()
  }

  /** Stops publishing and leaves the fleet at once. */
  async stop(): Promise<void> {
    if (!this.#timer) return
    clearInterval(this.#timer)
    this.#timer = null
    await this.#publishing
    await this.#o.store?.leave(this.id).catch((err) => this.#o.onError?.(err))
  }

  /** The figures of every live API process. */
  async shares(): Promise<ProcessShare[]> {
    if (this.#o.store) return this.#o.store.live()
    return [{ id: this.id, figures: await this.#o.read() }]
  }

  #publish() {
    const store = this.#o.store
    if (!store) return
    // One at a time: a slow Redis is not asked again before it answered.
    this.#publishing = this.#publishing.then(async () => {
      try {
        await store.publish(this.id, await this.#o.read(), LIVE_MS)
      } catch (err) {
        this.#o.onError?.(err)
      }
    })
  }
}
