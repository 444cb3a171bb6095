/**
 * How to start another module of this package as its own Node process, both from
 * the built dist/ (plain `node file.js`) and from the sources under tsx (tests,
 * development), where the child needs the same TypeScript loader.
 */
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'

const ext = extname(fileURLToPath(import.meta.url))

export interface NodeEntry {
  /** the module's file path */
  path: string
  /**
   * node options the module needs: from the sources, the TypeScript loader and the
   * "exports" condition that resolves `firstcome/bench-api` to firstcome's sources
   */
  execArgv: string[]
}

/** `relative` is resolved from the bench's src/ (or dist/), without an extension. */
export function nodeEntry(relative: string): NodeEntry {
  const path = fileURLToPath(new URL(`${relative}${ext}`, import.meta.url))
  const execArgv =
    ext === '.ts' ? ['--conditions=firstcome-source', '--import', import.meta.resolve('tsx')] : []
  return { path, execArgv }
}
