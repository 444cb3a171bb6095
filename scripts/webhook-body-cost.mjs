// What a webhook POST costs the machine, plain against gzip (docs/benchmarks.md,
// "Events"): a sender and a receiver in this one process on 127.0.0.1, one
// keep-alive connection, POSTs of a batch of 100 events shaped like
// coupon.issued, one after another. Prints the bytes sent per POST and the
// process's CPU per POST (both ends: on one machine both are paid).
//
//   node scripts/webhook-body-cost.mjs plain|gzip [posts]
import { Agent, createServer, request } from 'node:http'
import { gunzipSync, gzipSync } from 'node:zlib'

const mode = process.argv[2]
if (mode !== 'plain' && mode !== 'gzip')
  throw new Error('usage: webhook-body-cost.mjs plain|gzip [posts]')
const posts = Number(process.argv[3] ?? 3000)

const at = (i) => new Date(Date.UTC(2026, 11, 7, 12) + i).toISOString()
const event = (i) =>
  JSON.stringify({
    id: 1_000_000 + i,
    type: 'coupon.issued',
    createdAt: at(i),
    data: { couponId: 12, userId: `user-${(i * 7919) % 1_000_000}`, rank: i + 1, issuedAt: at(i) },
  })
const body = `{"webhookId":1,"events":[${Array.from({ length: 100 }, (_, i) => event(i)).join(',')}]}`

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const got = Buffer.concat(chunks)
    JSON.parse((req.headers['content-encoding'] === 'gzip' ? gunzipSync(got) : got).toString())
    res.end()
  })
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const { port } = server.address()
const agent = new Agent({ keepAlive: true, maxSockets: 1 })

function post(bytes, headers) {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        agent,
        headers: { 'content-length': bytes.length, ...headers },
      },
      (res) => res.resume().on('end', resolve),
    )
    req.on('error', reject)
    req.end(bytes)
  })
}

let sent = 0
const cpu = process.cpuUsage()
for (let i = 0; i < posts; i++) {
  const bytes = mode === 'gzip' ? gzipSync(body, { level: 1 }) : Buffer.from(body)
  sent += bytes.length
  await post(bytes, {
    'content-type': 'application/json',
    ...(mode === 'gzip' ? { 'content-encoding': 'gzip' } : {}),
  })
}
const used = process.cpuUsage(cpu)
console.log(
  `${mode}: ${Math.round(sent / posts)} bytes a POST, ` +
    `${Math.round((used.user + used.system) / posts)} µs of CPU a POST (sender and receiver)`,
)
agent.destroy()
server.close()
