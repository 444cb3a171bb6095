#!/usr/bin/env node
// The `firstcome` command. The TypeScript sources are compiled to dist/ by
// `npm install` (the package's prepare script runs `npm run build`).
import { existsSync } from 'node:fs'

// SQLite is Node's own node:sqlite (22.13 and later without a flag); an older
// Node would fail on the import with an error that names neither the cause nor
// the fix.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 13)) {
  process.stderr.write(
    `firstcome: Node.js ${process.versions.node} is too old; it needs Node.js 24 (the version in .nvmrc).\n` +
      '  In the checkout: nvm install, or on Linux x64\n' +
      '  export PATH="$(scripts/supported-node.sh)/bin:$PATH"   (see README, Quick start)\n',
  )
  process.exit(1)
}

const entry = new URL('../dist/main.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write(
    'firstcome: dist/ is missing; run `npm install` (or `npm run build`) first.\n',
  )
  process.exit(1)
}
await import(entry.href)
