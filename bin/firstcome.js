#!/usr/bin/env node
// The `firstcome` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the package's prepare script runs `npm run build`).
import { existsSync } from 'node:fs'

const entry = new URL('../dist/main.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write(
    'firstcome: dist/ is missing; run `npm install` (or `npm run build`) first.\n',
  )
  process.exit(1)
}
await import(entry.href)
