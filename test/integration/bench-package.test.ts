/**
 * The built `firstcome` runs the bench from its workspace package
 * (@firstcome/bench), and where the package is missing (the service installed
 * alone) `bench` says so while the rest of the CLI works.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'

const root = new URL('../..', import.meta.url).pathname

function firstcome(cwd: string, args: string[]) {
  return spawnSync(process.execPath, ['bin/firstcome.js', ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
  })
}

describe('the bench package', () => {
  let alone = ''

  before(() => {
    // Incremental: quick when the build is current.
    const build = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' })
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`)
    // The service's build and dependencies, without the link to the bench.
    alone = mkdtempSync(join(tmpdir(), 'firstcome-alone-'))
    for (const part of ['bin', 'dist', 'package.json']) {
      cpSync(join(root, part), join(alone, part), { recursive: true })
    }
    mkdirSync(join(alone, 'node_modules'))
    for (const name of readdirSync(join(root, 'node_modules'))) {
      if (name === '@firstcome') continue
      symlinkSync(join(root, 'node_modules', name), join(alone, 'node_modules', name))
    }
  })
  after(() => {
    if (alone) rmSync(alone, { recursive: true, force: true })
  })

  it('runs as `firstcome bench` from the build', () => {
    const bench = firstcome(root, ['bench', '--help'])
    assert.equal(bench.status, 0, bench.stderr)
    assert.match(bench.stdout, /^Usage: firstcome bench/)
  })

  it('missing: `bench` exits 2 saying so, and the rest of the CLI works', () => {
    const bench = firstcome(alone, ['bench', '--help'])
    assert.equal(bench.status, 2, bench.stderr)
    assert.match(bench.stderr, /^firstcome: the bench is not installed .*@firstcome\/bench/)
    const help = firstcome(alone, ['--help'])
    assert.equal(help.status, 0, help.stderr)
    assert.match(help.stdout, /^Usage: firstcome <command>/)
  })
})
