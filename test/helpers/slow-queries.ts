/**
 * A Kysely plugin that answers the statements it picks `ms` late: whatever the
 * statement holds (its locks, its connection) is held that much longer.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { KyselyPlugin, RootOperationNode } from 'kysely'

export function slowQueries(ms: number, picks: (node: RootOperationNode) => boolean): KyselyPlugin {
  const slow = new WeakSet<object>()
  return {
    transformQuery(args) {
      if (picks(args.node)) slow.add(args.queryId)
      return args.node
    },
    async transformResult(args) {
      if (slow.has(args.queryId)) await sleep(ms)
      return args.result
    },
  }
}
