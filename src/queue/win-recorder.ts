/**
 * The WinRecorder port: makes a win durable before its 201 is sent.
 *
 * Embedded mode uses `GroupCommitRecorder` (the win is a database row before the
 * answer). Redis mode needs none: the gate's Lua script appends the win to the
 * coupon's stream in the same atomic step that grants it, and the stream worker
 * persists it afterwards.
 */
import type { Win } from '../domain/coupon.js'

export interface WinRecorder {
  /** Resolves once the win is durable; rejects (UnavailableError) if it cannot be. */
  record(win: Win): Promise<void>
  /** Resolves when every win handed in so far is durable or refused. */
  drain(): Promise<void>
}
