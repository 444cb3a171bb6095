// The draw through the service, Redis mode (docs/benchmarks.md, "The opening
// draw through the service"):
//   REDIS_URL=redis://127.0.0.1:PORT DATABASE_URL=postgres://… \
//     node --import tsx scripts/bench-draw-service.ts [entrants] [quantity]
// Creates a draw coupon, writes the entrants into its Redis entries as enter.lua
// writes them, reports their memory (MEMORY USAGE), moves drawAt to now + 1 s and
// times, from drawAt: the winners in the gate (answerable, QUEUED), the record in
// the database, and every winner persisted. Use a Redis and a database of the
// run's own: it leaves its coupon behind.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import pino from 'pino'
import { loadConfig } from '../src/config.js'
import { createContainer } from '../src/container.js'
import { RedisKeys } from '../src/coupon-state/keys.js'
import { findDraw } from '../src/db/draws-repo.js'
import { pseudonymOf } from '../src/draw/shuffle.js'
import { createRedis } from '../src/redis/connection.js'

const entrants = Number(process.argv[2] ?? 1_000_000)
const quantity = Number(process.argv[3] ?? 500)
const config = loadConfig({ ...process.env, LOG_LEVEL: 'warn' })
if (!config.redis) throw new Error('set REDIS_URL')
const container = await createContainer(config, pino({ level: 'warn' }))
const worker = await container.startWorker?.()
const now = Date.now()
const coupon = await container.coupons.create({
  title: 'draw bench',
  totalQuantity: quantity,
  discountAmount: 1,
  minAvailableAmount: 0,
  issueStart: new Date(now - 1000),
  drawAt: new Date(now + 3_600_000),
  issueEnd: new Date(now + 7_200_000),
})
const seed = (await findDraw(container.database.db, coupon.id))?.seed
if (!seed) throw new Error('no seed')
const redis = createRedis(config.redis, 'draw-bench')
await redis.connect().catch(() => {})
const k = new RedisKeys(config.redis.keyPrefix).coupon(coupon.id)
const loadStart = performance.now()
for (let i = 0; i < entrants; i += 2000) {
  const args: (string | number)[] = []
  for (let j = i; j < Math.min(entrants, i + 2000); j++) {
    const userId = `user-${j}`
    args.push(0, pseudonymOf(seed, userId) + userId)
  }
  await redis.zadd(k.entries, ...args)
}
const memory = Number(await redis.call('MEMORY', 'USAGE', k.entries, 'SAMPLES', '0'))
process.stdout.write(
  `${entrants} entrants, ${quantity} coupons, node ${process.version}\n` +
    `entries written in ${(performance.now() - loadStart).toFixed(0)} ms; ` +
    `zset ${(memory / 2 ** 20).toFixed(1)} MiB (${(memory / entrants).toFixed(1)} B an entrant)\n`,
)

/** Redis's CPU seconds so far (user + system). */
async function redisCpu(): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0)
  return field('used_cpu_user') + field('used_cpu_sys')
}
const drawAt = Date.now() + 1000
await container.coupons.patch(coupon.id, { drawAt: new Date(drawAt) })
const since = (t: number) => `${(t - drawAt).toFixed(0)} ms`
while (Date.now() < drawAt) await sleep(1)
const cpuAtDraw = process.cpuUsage()
const redisCpuAtDraw = await redisCpu()
let winnersAt = 0
while (!winnersAt) {
  if ((await redis.hget(k.draw, 'state')) === 'drawn') winnersAt = Date.now()
  else await sleep(2)
}
const used = process.cpuUsage(cpuAtDraw)
const redisUsed = (await redisCpu()) - redisCpuAtDraw
const won = await redis.hlen(k.users)
let recordAt = 0
while (!recordAt) {
  if ((await findDraw(container.database.db, coupon.id))?.drawn) recordAt = Date.now()
  else await sleep(20)
}
let persistedAt = 0
while (!persistedAt) {
  const stats = await container.issues.stats(coupon.id)
  if (stats.persisted === won) persistedAt = Date.now()
  else await sleep(20)
}
process.stdout.write(
  `from drawAt: ${won} winners in the gate (QUEUED) ${since(winnersAt)}; ` +
    `record ${since(recordAt)}; every winner persisted ${since(persistedAt)}\n` +
    `CPU from drawAt to the winners in the gate: this process ${((used.user + used.system) / 1000).toFixed(0)} ms, ` +
    `Redis ${(redisUsed * 1000).toFixed(0)} ms\n`,
)
redis.disconnect()
await worker?.stop()
await container.close()
