import type { Config } from './config.js'

/** The mode a configuration runs in, in a few words, for banners and the bench's report. */
export function describeMode(config: Readonly<Config>): string {
  const db =
    config.dialect === 'sqlite'
      ? `SQLite ${config.databaseUrl.replace(/^sqlite:/, '')}`
      : config.dialect
  if (!config.redis) return `embedded: ${db}, in-process gate`
  const processes = config.apiProcesses > 1 ? `, ${config.apiProcesses} API processes` : ''
  const redis = config.redis.clusterNodes
    ? 'Redis Cluster'
    : config.redis.sentinels
      ? `Redis (Sentinel: ${config.redis.sentinels.name})`
      : 'Redis'
  return `${redis} gate and stream, ${db}${processes}`
}
