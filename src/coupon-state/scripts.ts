/**
 * Every Lua script that touches a coupon's Redis state, loaded once and called by
 * SHA. Each file's header documents its KEYS, ARGV and returns; the codes it
 * answers are those of codes.ts.
 */
import { LuaScript } from '../redis/lua-script.js'

const script = (name: string) => new LuaScript(new URL(`./lua/${name}.lua`, import.meta.url))

export const scripts = {
  /** the gate: decide a batch of issue requests, record and queue the wins */
  issue: script('issue'),
  /** the gate: replace a loaded coupon's rules */
  configure: script('configure'),
  /** the gate: take partner codes (and the limit they allow), in number order */
  addCodes: script('add-codes'),
  /** the gate: a coupon's win count and one user's win */
  peek: script('peek'),
  /** rebuild: swap the staged state in, with the stream's consumer group */
  load: script('load'),
  /** the tail loss guard: stamp, check or clear the server's stamp on a coupon */
  stamp: script('stamp'),
  /** rebuild: release the lock if it is still ours */
  unlock: script('unlock'),
  /** the worker: new wins, packed as columns */
  readWins: script('read-wins'),
  /** the worker: are these packed wins the gate's? */
  verify: script('verify'),
  /** the worker: acknowledge persisted entries and trim the stream */
  ack: script('ack'),
  /** the worker: move an entry that cannot be persisted to the dead letters */
  deadLetter: script('dead-letter'),
  /** the worker: drop a dead worker's consumer once it holds nothing */
  forgetConsumer: script('forget-consumer'),
  /** the draw: a batch of entries */
  enter: script('enter'),
  /** the draw: set or clear a coupon's drawAt */
  drawConfigure: script('draw-configure'),
  /** the draw: close the entries */
  drawClose: script('draw-close'),
  /** the draw: enter a chunk of winners */
  drawEnter: script('draw-enter'),
  /** the draw: extend its lease while it runs */
  renew: script('renew'),
} as const

export type ScriptName = keyof typeof scripts
