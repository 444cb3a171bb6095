import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { listenDelta, parseNetstat, parseProcStat } from '../../src/bench/kernel.js'

describe('kernel counters', () => {
  it('reads ListenOverflows and ListenDrops from /proc/net/netstat', () => {
    const text = [
      'TcpExt: SyncookiesSent TW ListenOverflows ListenDrops TCPHPHits',
      'TcpExt: 0 11 37 41 5000',
      'IpExt: InNoRoutes InTruncatedPkts',
      'IpExt: 0 0',
    ].join('\n')
    const before = parseNetstat(text)
    assert.deepEqual(before, { listenOverflows: 37, listenDrops: 41 })
    assert.deepEqual(listenDelta(before, { listenOverflows: 40, listenDrops: 45 }), {
      listenOverflows: 3,
      listenDrops: 4,
    })
    assert.equal(parseNetstat('IpExt: a\nIpExt: 1'), null)
    assert.equal(listenDelta(null, before), null)
  })

  it('reads a process CPU time from /proc/<pid>/stat, whatever its name', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i))
    fields[13] = '250' // utime (field 14)
    fields[14] = '50' // stime (field 15)
    const text = `1234 (node (bench) x) ${fields.slice(2).join(' ')}`
    assert.equal(parseProcStat(text), 3000)
  })
})
