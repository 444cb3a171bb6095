/**
 * One scrape answers for every API process (API_PROCESSES > 1). The process that
 * gets the scrape asks the primary, which asks every API process for its metrics
 * (each runs its collect() callbacks, so counts kept in maps are added then) and
 * hands the replies back; the asking process merges them with prom-client's
 * AggregatorRegistry (counters and histograms summed, each gauge by its own
 * `aggregator`). A process that does not answer within SCRAPE_TIMEOUT_MS is left
 * out of that scrape rather than holding it up.
 *
 * The primary only relays: it has no registry of its own and merges nothing.
 */
import cluster, { type Worker } from 'node:cluster'
import {
  AggregatorRegistry,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client'

const SCRAPE_TIMEOUT_MS = 3000

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[]

type Message =
  | { type: 'firstcome:scrape'; id: number }
  | { type: 'firstcome:collect'; id: number }
  | { type: 'firstcome:collected'; id: number; metrics: MetricsJson }
  | { type: 'firstcome:scraped'; id: number; processes: MetricsJson[] }

const isMessage = (m: unknown): m is Message =>
  typeof m === 'object' &&
  m !== null &&
  String((m as { type?: unknown }).type).startsWith('firstcome:')

/** In the primary: relays scrapes between the API processes. */
export function relayClusterScrapes(): void {
  let next = 1
  const open = new Map<number, { replies: MetricsJson[]; waiting: Set<number>; done: () => void }>()
  cluster.on('message', (from: Worker, message: unknown) => {
    if (!isMessage(message)) return
    if (message.type === 'firstcome:collected') {
      const scrape = open.get(message.id)
      if (!scrape) return
      if (!scrape.waiting.delete(from.id)) return
      scrape.replies.push(message.metrics)
      if (scrape.waiting.size === 0) scrape.done()
      return
    }
    if (message.type !== 'firstcome:scrape') return
    const id = next++
    const workers = Object.values(cluster.workers ?? {}).filter(
      (w): w is Worker => !!w && w.isConnected(),
    )
    const scrape = {
      replies: [] as MetricsJson[],
      waiting: new Set(workers.map((w) => w.id)),
      done: () => {},
    }
    const timer = setTimeout(() => scrape.done(), SCRAPE_TIMEOUT_MS)
    scrape.done = () => {
      clearTimeout(timer)
      open.delete(id)
      const reply: Message = {
        type: 'firstcome:scraped',
        id: message.id,
        processes: scrape.replies,
      }
      if (from.isConnected()) from.send(reply)
    }
    open.set(id, scrape)
    for (const w of workers) w.send({ type: 'firstcome:collect', id } satisfies Message)
  })
}

/**
 * In an API process: answers the primary's collect requests from `registry`, and
 * returns the function that scrapes every process. Outside a cluster the
 * function reads `registry` alone.
 */
export function clusterScraper(registry: Registry): () => Promise<Registry> {
  if (!cluster.isWorker || !process.send) return async () => registry
  const waiting = new Map<number, (processes: MetricsJson[]) => void>()
  let next = 1
  process.on('message', (message: unknown) => {
    if (!isMessage(message)) return
    if (message.type === 'firstcome:collect') {
      registry.getMetricsAsJSON().then(
        (metrics) =>
          process.send?.({
            type: 'firstcome:collected',
            id: message.id,
            metrics,
          } satisfies Message),
        () => {},
      )
    } else if (message.type === 'firstcome:scraped') {
      waiting.get(message.id)?.(message.processes)
      waiting.delete(message.id)
    }
  })
  return () =>
    new Promise<Registry>((resolve, reject) => {
      const id = next++
      const timer = setTimeout(() => {
        waiting.delete(id)
        reject(new Error('the primary process did not answer the scrape'))
      }, SCRAPE_TIMEOUT_MS * 2)
      waiting.set(id, (processes) => {
        clearTimeout(timer)
        resolve(AggregatorRegistry.aggregate(processes))
      })
      process.send?.({ type: 'firstcome:scrape', id } satisfies Message)
    })
}
