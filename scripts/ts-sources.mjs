// Runs the TypeScript sources on Node's own type stripping: imported with
// `node --import ./scripts/ts-sources.mjs`, by the test runner for every test
// file and by the tests for every `firstcome` process they start.
//
// The sources import each other as `./x.js` (what tsc emits and resolves); the
// hook below gives `./x.ts` where no `./x.js` exists. Node strips the types
// itself, and its compile cache (in the OS's temporary directory) keeps the
// stripped and compiled modules between processes, so a process starts on less
// CPU than through tsx's loader (docs/benchmarks.md). Type stripping runs
// only erasable TypeScript (no enums, namespaces or parameter properties):
// `npm run check` has tsc's `erasableSyntaxOnly` refuse the rest.
import { enableCompileCache, registerHooks } from 'node:module'

enableCompileCache()

const RELATIVE = /^(?:\.{1,2}\/|\/|file:)/

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context)
    } catch (err) {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !specifier.endsWith('.js')) throw err
      if (!RELATIVE.test(specifier)) throw err
      return nextResolve(`${specifier.slice(0, -3)}.ts`, context)
    }
  },
})
