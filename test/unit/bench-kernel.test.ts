import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import {
  listenDelta,
  parseNetstat,
  parseParentPid,
  parseProcStat,
  parseRssBytes,
  processCpuMs,
  processRss,
} from '../../packages/bench/src/kernel.js'

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

  it('reads resident memory (pages, field 24) in bytes', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i))
    fields[23] = '2560' // rss in pages
    assert.equal(parseRssBytes(`99 (x) y) ${fields.slice(2).join(' ')}`), 2560 * 4096)
    const mine = processRss(process.pid)?.largest ?? 0
    assert.ok(mine > 10 * 1024 * 1024 && mine < 4 * 1024 ** 3, `rss ${mine}`)
  })

  it('reads the parent pid, whatever the name', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i))
    fields[3] = '777' // ppid (field 4)
    assert.equal(parseParentPid(`1234 (a) b) ${fields.slice(2).join(' ')}`), 777)
  })

  it('counts the CPU and memory of a process and its live children', async () => {
    // A child that burns 300 ms of CPU, says so, and waits to be measured.
    const burn = `const t=process.cpuUsage();while(process.cpuUsage(t).user<3e5){}
      process.stdout.write('ready');setInterval(()=>{},1000)`
    const child = spawn(process.execPath, ['-e', burn], { stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      await once(child.stdout, 'data')
      const tree = processCpuMs(process.pid) ?? 0
      const own = process.cpuUsage()
      assert.ok(tree - (own.user + own.system) / 1000 >= 250, `tree ${tree} ms`)
      const rss = processRss(process.pid)
      assert.ok(rss, 'rss of the tree')
      // the child's memory is in the total, not in the largest single process
      assert.ok(rss.largest >= process.memoryUsage.rss() * 0.9, JSON.stringify(rss))
      assert.ok(rss.total >= rss.largest + 10 * 1024 * 1024, JSON.stringify(rss))
    } finally {
      child.kill('SIGKILL')
    }
    assert.equal(processCpuMs(2 ** 22 + 12345), null)
  })
})
