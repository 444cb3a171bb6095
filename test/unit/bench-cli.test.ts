import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  BENCH_USAGE,
  describePlan,
  parseBenchArgs,
  parseUsers,
} from '../../packages/bench/src/cli.js'
import { ConfigError } from '../../src/config.js'

describe('firstcome bench flags', () => {
  it('defaults to the original Locust run', () => {
    const o = parseBenchArgs([])
    assert.notEqual(o, 'help')
    if (o === 'help') return
    assert.equal(o.scenario, 'seed')
    assert.equal(o.connections, 5000)
    assert.equal(o.durationS, 300)
    assert.deepEqual(o.users, { min: 1, max: 10_000_000 })
    assert.equal(o.quantity, 500)
    assert.equal(o.rate, null)
    assert.equal(o.url, null)
    assert.equal(o.baseline, false)
    assert.equal(o.serverCpus, null)
    // Said before the run starts: five minutes.
    assert.match(describePlan(o), /^seed: 5,000 looping connections for 300 s, then the checks/)
  })

  it('pins the started servers with --server-cpus', () => {
    const o = parseBenchArgs(['--server-cpus', '0,2-3'])
    assert.notEqual(o, 'help')
    if (o === 'help') return
    assert.equal(o.serverCpus, '0,2-3')
    assert.throws(() => parseBenchArgs(['--server-cpus', 'all']), /--server-cpus/)
    assert.throws(
      () => parseBenchArgs(['--server-cpus', '0', '--url', 'http://127.0.0.1:8080']),
      /--server-cpus/,
    )
  })

  it('reads every flag', () => {
    const o = parseBenchArgs([
      '--scenario=compat',
      '-c',
      '2000',
      '-d',
      '60',
      '--ramp',
      '10',
      '--rate',
      '1500.5',
      '--users',
      '10..20',
      '--timeout',
      '5',
      '--processes',
      '0',
      '--url',
      'http://127.0.0.1:8080',
      '--coupon',
      '7',
      '--admin-token',
      't',
      '--database-url',
      'sqlite:/tmp/x.sqlite',
      '--drain-timeout',
      '9',
      '--server-node-option=--cpu-prof',
      '--baseline',
      '--json',
      'r.json',
      '--html',
      'r.html',
      '--no-progress',
    ])
    assert.notEqual(o, 'help')
    if (o === 'help') return
    assert.equal(o.scenario, 'compat')
    assert.equal(o.connections, 2000)
    assert.equal(o.durationS, 60)
    assert.equal(o.rampS, 10)
    assert.equal(o.rate, 1500.5)
    assert.deepEqual(o.users, { min: 10, max: 20 })
    assert.equal(o.timeoutS, 5)
    assert.equal(o.processes, 0)
    assert.equal(o.url, 'http://127.0.0.1:8080')
    assert.equal(o.couponId, 7)
    assert.equal(o.adminToken, 't')
    assert.equal(o.databaseUrl, 'sqlite:/tmp/x.sqlite')
    assert.equal(o.drainTimeoutS, 9)
    assert.deepEqual(o.serverNodeOptions, ['--cpu-prof'])
    assert.equal(o.baseline, true)
    assert.equal(o.json, 'r.json')
    assert.equal(o.html, 'r.html')
    assert.equal(o.progress, false)
  })

  it('refuses bad values with a message naming the flag', () => {
    assert.throws(
      () => parseBenchArgs(['--scenario', 'nope']),
      /--scenario must be one of seed, win, compat, draw/,
    )
    assert.throws(
      () => parseBenchArgs(['--scenario', 'draw', '--coupon', '3']),
      /the draw scenario creates its own coupon/,
    )
    assert.throws(() => parseBenchArgs(['-c', '0']), ConfigError)
    assert.throws(() => parseBenchArgs(['--rate', '-3']), /--rate/)
    assert.throws(() => parseBenchArgs(['--url', 'https://x']), /--url/)
    assert.throws(() => parseUsers('5..1'), /--users/)
    assert.throws(() => parseBenchArgs(['--bogus']), /Unknown option/)
    assert.deepEqual(parseUsers('1_000..10,000'), { min: 1000, max: 10_000 })
  })

  it('documents every flag in --help', () => {
    assert.equal(parseBenchArgs(['--help']), 'help')
    for (const flag of [
      '--scenario',
      '--connections',
      '--duration',
      '--ramp',
      '--rate',
      '--users',
      '--timeout',
      '--processes',
      '--url',
      '--quantity',
      '--coupon',
      '--admin-token',
      '--database-url',
      '--drain-timeout',
      '--server-node-option',
      '--server-cpus',
      '--baseline',
      '--json',
      '--html',
      '--no-progress',
      '--help',
    ]) {
      assert.ok(BENCH_USAGE.includes(flag), `--help mentions ${flag}`)
    }
  })
})
