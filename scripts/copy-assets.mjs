// Copies the non-TypeScript files the service reads at run time (Lua scripts, the
// dashboard page) from src/ to dist/, keeping their relative paths.
import { cpSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const ASSET = /\.(lua|html)$/
const src = new URL('../src/', import.meta.url).pathname
const dist = new URL('../dist/', import.meta.url).pathname

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) walk(path)
    else if (ASSET.test(name)) cpSync(path, join(dist, relative(src, path)))
  }
}
walk(src)
