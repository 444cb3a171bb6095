/**
 * SQLite's drivers cannot bind a Date. This plugin turns every Date parameter into
 * ISO-8601 UTC text (`2026-11-24T03:42:40.123Z`), which sorts and compares
 * correctly as text, so repositories pass Dates on every dialect alike.
 */
import {
  type KyselyPlugin,
  OperationNodeTransformer,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  PrimitiveValueListNode,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
  ValueNode,
} from 'kysely'

const toText = (v: unknown) => (v instanceof Date ? v.toISOString() : v)

class DateToText extends OperationNodeTransformer {
  protected override transformValue(node: ValueNode): ValueNode {
    return node.value instanceof Date ? ValueNode.create(node.value.toISOString()) : node
  }

  protected override transformPrimitiveValueList(
    node: PrimitiveValueListNode,
  ): PrimitiveValueListNode {
    return node.values.some((v) => v instanceof Date)
      ? PrimitiveValueListNode.create(node.values.map(toText))
      : node
  }
}

export class SqliteDatesPlugin implements KyselyPlugin {
  readonly #transformer = new DateToText()

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.#transformer.transformNode(args.node)
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result
  }
}
