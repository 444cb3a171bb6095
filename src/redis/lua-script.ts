/**
 * A Lua script loaded once and called by SHA (EVALSHA). On NOSCRIPT (a restarted
 * or flushed server) it falls back to EVAL, which also caches it again. A
 * Cluster's redirect handed to it by the auto-pipeline (connection.ts,
 * ReroutingCluster) means the script did not run: it is sent again, on its own,
 * and ioredis follows the redirects of a command sent so.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Command } from 'ioredis'
import type { RedisClient } from './connection.js'
import { redirectOf } from './errors.js'

export type LuaReply = number | string | null | LuaReply[]

export class LuaScript {
  readonly source: string
  readonly sha: string

  constructor(url: URL) {
    this.source = readFileSync(url, 'utf8')
    this.sha = createHash('sha1').update(this.source).digest('hex')
  }

  async run(
    client: RedisClient,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<LuaReply> {
    return this.#bySha(async (command, script) => {
      try {
        return await (command === 'evalsha'
          ? client.evalsha(script, keys.length, ...keys, ...args)
          : client.eval(script, keys.length, ...keys, ...args))
      } catch (err) {
        if (redirectOf(err) === null) throw err
        const again = [script, keys.length, ...keys, ...args]
        return client.sendCommand(new Command(command, again, { replyEncoding: 'utf8' }))
      }
    })
  }

  /**
   * The same, written to the connection at once instead of waiting for the next
   * auto-pipeline flush: for a call that is already a batch of requests, an extra
   * event-loop turn would only add latency.
   */
  runNow(
    client: RedisClient,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<LuaReply> {
    return this.#bySha((command, script) =>
      client.sendCommand(new Command(command, [script, keys.length, ...keys, ...args])),
    )
  }

  /** EVALSHA, and EVAL once more if the server has not (or no longer) got the script. */
  async #bySha(send: (command: 'evalsha' | 'eval', script: string) => unknown): Promise<LuaReply> {
    try {
      return (await send('evalsha', this.sha)) as LuaReply
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return (await send('eval', this.source)) as LuaReply
    }
  }
}
