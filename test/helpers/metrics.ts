/**
 * A metric's value in this process, read from its prom-client object: what a
 * test waits on when it waits for something the service counts.
 */
import type { Counter, Gauge } from 'prom-client'

/** The sum over the series whose labels include `labels` (every series without). */
export async function metricValue<L extends string>(
  metric: Counter<L> | Gauge<L>,
  labels: Partial<Record<L, string>> = {},
): Promise<number> {
  const { values } = await metric.get()
  return values
    .filter((v) =>
      Object.entries(labels).every(
        ([k, want]) => (v.labels as Record<string, unknown>)[k] === want,
      ),
    )
    .reduce((sum, v) => sum + v.value, 0)
}

/**
 * The sum of a metric's series whose labels include `labels`, scraped from a
 * process's /metrics (a server or worker process of the test's own).
 */
export async function scrapedValue(
  metricsUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const res = await fetch(`${metricsUrl}/metrics`)
  if (res.status !== 200) throw new Error(`${metricsUrl}/metrics: ${res.status}`)
  let sum = 0
  for (const line of (await res.text()).split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const series = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]),
    )
    if (Object.entries(labels).every(([k, want]) => series[k] === want)) sum += Number(m[3])
  }
  return sum
}
