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
