/**
 * A Cluster's redirects that ioredis hands to the caller. Its auto-pipeline
 * sends the commands of one node in one batch, whatever their slots; when a
 * slot has moved and another command of the batch went through, the moved
 * slot's command is answered MOVED to its caller, and ioredis leaves its slot
 * map as it was (ioredis#2075; it reloads the map on no timer of its own).
 * - The client (ReroutingCluster) reloads its slot map at once: the next
 *   batches go to the slot's new master.
 * - A script so redirected was not run; LuaScript sends it again on its own:
 *   its caller gets the answer, and it ran once.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import type { RedisClient } from '../../src/redis/connection.js'
import { redirectOf } from '../../src/redis/errors.js'
import { LuaScript } from '../../src/redis/lua-script.js'
import {
  clusterNodes,
  serviceClient,
  startCluster,
  type TestCluster,
} from '../helpers/redis-cluster.js'
import { skipUnlessRedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

describe('Redis Cluster: redirects handed to the caller', {
  skip: await skipUnlessRedisServer('to start a test cluster'),
}, () => {
  let cluster: TestCluster
  let client: RedisClient
  let dir: string
  let tags = 0

  before(async () => {
    cluster = await startCluster()
    client = await serviceClient(cluster)
    dir = mkdtempSync(join(tmpdir(), 'firstcome-redirects-'))
  })
  after(async () => {
    client?.disconnect()
    await cluster?.stop()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  /** Two keys of one master in different slots, known to the client; and another master. */
  const twoKeysOnOneMaster = async () => {
    const first = `redirect{t${tags++}}`
    const firstSlot = cluster.slotOf(first)
    const from = cluster.masterOf(firstSlot)
    let second = ''
    let secondSlot = firstSlot
    while (secondSlot === firstSlot || cluster.masterOf(secondSlot) !== from) {
      second = `redirect{t${tags++}}`
      secondSlot = cluster.slotOf(second)
    }
    await client.set(first, '0')
    await client.set(second, '0')
    const to = cluster.nodes.map((n) => n.port).find((p) => p !== from)
    if (to === undefined) throw new Error('one master only')
    return { moving: first, staying: second, from, to }
  }

  /** The slot of `key`, with it, from `from` to `to`; every master told. */
  const moveSlot = (key: string, from: number, to: number) => {
    const slot = String(cluster.slotOf(key))
    const fromId = cluster.cli(from, 'cluster', 'myid')
    const toId = cluster.cli(to, 'cluster', 'myid')
    assert.equal(cluster.cli(to, 'cluster', 'setslot', slot, 'importing', fromId), 'OK')
    assert.equal(cluster.cli(from, 'cluster', 'setslot', slot, 'migrating', toId), 'OK')
    assert.equal(cluster.cli(from, 'migrate', '127.0.0.1', String(to), key, '0', '5000'), 'OK')
    for (const n of clusterNodes(cluster.cli(to, 'cluster', 'nodes'))) {
      if (n.flags.includes('master')) cluster.cli(n.port, 'cluster', 'setslot', slot, 'node', toId)
    }
    assert.equal(cluster.masterOf(Number(slot)), to)
  }

  it('a redirected command: the next batch goes to the new master', async () => {
    const { moving, staying, from, to } = await twoKeysOnOneMaster()
    moveSlot(moving, from, to)
    // One batch to the old master: the staying key's write goes through.
    const [moved, stayed] = await Promise.allSettled([client.incr(moving), client.incr(staying)])
    assert.equal(stayed.status, 'fulfilled')
    assert.equal(moved.status, 'rejected', 'ioredis hands this redirect to the caller')
    assert.equal(redirectOf(moved.reason), 'MOVED', String(moved.reason))
    // Left to ioredis, every batch like it would meet MOVED again.
    await waitFor(
      'a batch of both keys to go through',
      async () => {
        const both = await Promise.allSettled([client.incr(moving), client.incr(staying)])
        return both.every((r) => r.status === 'fulfilled')
      },
      1500,
      20,
    )
  })

  it('a redirected script is sent again once, and runs once', async () => {
    const file = join(dir, 'incr.lua')
    writeFileSync(file, "return redis.call('INCR', KEYS[1])\n")
    const incr = new LuaScript(pathToFileURL(file))
    const { moving, staying, from, to } = await twoKeysOnOneMaster()
    assert.equal(await incr.run(client, [moving], []), 1) // the script loaded on the old master
    moveSlot(moving, from, to)
    const [moved, stayed] = await Promise.all([
      incr.run(client, [moving], []),
      client.incr(staying),
    ])
    assert.equal(moved, 2, 'the script answered, having run once')
    assert.equal(stayed, 1)
    assert.equal(await client.get(moving), '2')
    assert.equal(await client.get(staying), '1')
  })
})
