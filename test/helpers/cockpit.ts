/**
 * A firstcome deployment as an operator runs one, in child processes: Redis
 * mode, `serve --no-worker` with API_PROCESSES API processes, and `firstcome
 * worker` processes of its own, on a database and a key prefix of the test's.
 * Plus what a Prometheus scrape reads, parsed.
 */
import { after } from 'node:test'
import { createDatabaseUrl, dropDatabaseUrl } from './databases.js'
import {
  type ServerProcess,
  startServer,
  startWorkerProcess,
  stopAll,
  type WorkerProcess,
} from './processes.js'
import { deleteKeys, REDIS_URL, redisClient, uniquePrefix } from './redis.js'
import { within } from './wait.js'

export const ADMIN_TOKEN = 'cockpit-admin-token'

export interface Deployment {
  server: ServerProcess
  workers: WorkerProcess[]
  databaseUrl: string
  prefix: string
}

/** Starts one; everything is stopped and dropped after the suite. */
export function deployment(options: { apiProcesses: number; workers: number }) {
  let d: Deployment | null = null
  const prefix = uniquePrefix()
  after(async () => {
    if (!d) return
    // SIGTERM lets the primary stop its API processes; SIGKILL if it does not.
    d.server.signal('SIGTERM')
    await within(d.server.exited, 15_000, undefined)
    await stopAll([d.server, ...d.workers])
    const redis = redisClient()
    await deleteKeys(redis, prefix)
    redis.disconnect()
    await dropDatabaseUrl(d.databaseUrl)
  })
  return {
    async start(env: Record<string, string> = {}): Promise<Deployment> {
      const databaseUrl = await createDatabaseUrl('postgres')
      const common = { DATABASE_URL: databaseUrl, REDIS_URL, REDIS_KEY_PREFIX: prefix, ...env }
      const server = await startServer({
        databaseUrl,
        adminToken: ADMIN_TOKEN,
        noWorker: true,
        env: { ...common, API_PROCESSES: String(options.apiProcesses) },
      })
      d = { server, workers: [], databaseUrl, prefix }
      for (let i = 0; i < options.workers; i++)
        d.workers.push(await startWorkerProcess({ ...common, LOG_LEVEL: 'info' }))
      return d
    },
  }
}

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a Prometheus text exposition. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) })
  }
  return samples
}

/** The sum of the samples named so whose labels include `labels`. */
export function sumOf(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0)
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`)
  if (res.status !== 200) throw new Error(`${url}/metrics answered ${res.status}`)
  return parseMetrics(await res.text())
}

export async function createCoupon(
  url: string,
  fields: Partial<{
    title: string
    totalQuantity: number | null
    issueStart: Date
    issueEnd: Date
    /** an opening draw at this instant */
    drawAt: Date
  }>,
): Promise<number> {
  const res = await fetch(`${url}/v1/coupons`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      title: fields.title ?? 'cockpit',
      totalQuantity: fields.totalQuantity === undefined ? 100 : fields.totalQuantity,
      discountAmount: 1,
      minAvailableAmount: 1,
      issueStart: (fields.issueStart ?? new Date(Date.now() - 60_000)).toISOString(),
      issueEnd: (fields.issueEnd ?? new Date(Date.now() + 3_600_000)).toISOString(),
      ...(fields.drawAt ? { drawAt: fields.drawAt.toISOString() } : {}),
    }),
  })
  const body = (await res.json()) as { id: number }
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(body)}`)
  return body.id
}
