/**
 * A Lua script loaded once and called by SHA (EVALSHA). On NOSCRIPT (a restarted
 * or flushed server) it falls back to EVAL, which also caches it again. On a
 * Cluster's redirect that reached it (connection.ts, ReroutingCluster), the
 * script did not run: it is sent again, once, after the slot table is reloaded.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Command } from 'ioredis'
import { type RedisClient, ReroutingCluster } from './connection.js'
import { isRedirect } from './errors.js'

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
    return this.#bySha(client, (command, script) =>
      command === 'evalsha'
        ? client.evalsha(script, keys.length, ...keys, ...args)
        : client.eval(script, keys.length, ...keys, ...args),
    )
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
    return this.#bySha(client, (command, script) =>
      client.sendCommand(new Command(command, [script, keys.length, ...keys, ...args])),
    )
  }

  /**
   * EVALSHA, and EVAL once more if the server has not (or no longer) got the
   * script; each sent once more after a redirect.
   */
  async #bySha(
    client: RedisClient,
    send: (command: 'evalsha' | 'eval', script: string) => unknown,
  ): Promise<LuaReply> {
    const rerouted = async (command: 'evalsha' | 'eval', script: string) => {
      try {
        return await send(command, script)
      } catch (err) {
        if (!(client instanceof ReroutingCluster) || !isRedirect(err)) throw err
        await client.reloadSlots()
        return await send(command, script)
      }
    }
    try {
      return (await rerouted('evalsha', this.sha)) as LuaReply
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return (await rerouted('eval', this.source)) as LuaReply
    }
  }
}
