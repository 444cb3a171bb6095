/**
 * What the kernel saw: accept-queue overflows (a listen backlog too small for a
 * connection storm makes the kernel drop connections silently; clients then time
 * out while the server looks idle) and the CPU a process used. Linux /proc only;
 * elsewhere these read as null and the report says so.
 */
import { readdirSync, readFileSync } from 'node:fs'

export interface ListenCounters {
  listenOverflows: number
  listenDrops: number
}

/** TcpExt ListenOverflows/ListenDrops from the text of /proc/net/netstat. */
export function parseNetstat(text: string): ListenCounters | null {
  const lines = text.split('\n').filter((l) => l.startsWith('TcpExt:'))
  const names = lines[0]?.split(/\s+/)
  const values = lines[1]?.split(/\s+/)
  if (!names || !values) return null
  const read = (name: string) => {
    const i = names.indexOf(name)
    return i < 0 ? null : Number(values[i])
  }
  const listenOverflows = read('ListenOverflows')
  const listenDrops = read('ListenDrops')
  if (listenOverflows === null || listenDrops === null) return null
  return { listenOverflows, listenDrops }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** The counters are per network namespace: other traffic on the machine counts too. */
export function listenCounters(): ListenCounters | null {
  const text = readText('/proc/net/netstat')
  return text === null ? null : parseNetstat(text)
}

export function listenDelta(before: ListenCounters | null, after: ListenCounters | null) {
  if (!before || !after) return null
  return {
    listenOverflows: after.listenOverflows - before.listenOverflows,
    listenDrops: after.listenDrops - before.listenDrops,
  }
}

/** The cap the kernel puts on any listen backlog. */
export function somaxconn(): number | null {
  const text = readText('/proc/sys/net/core/somaxconn')
  return text === null ? null : Number(text.trim())
}

/** Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux port in use. */
const CLOCK_TICKS = 100

/** utime + stime from the text of /proc/<pid>/stat, in ms. */
export function parseProcStat(text: string): number | null {
  // The command name (field 2) may contain spaces and parentheses: skip past it.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null
  return ((utime + stime) * 1000) / CLOCK_TICKS
}

/** The parent pid from the text of /proc/<pid>/stat (field 4). */
export function parseParentPid(text: string): number {
  return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1])
}

/** The /proc/<pid>/stat text of a process and of every live descendant. */
function processTree(pid: number): string[] | null {
  if (readText(`/proc/${pid}/stat`) === null) return null
  const stats = new Map<number, string>()
  for (const name of readdirSafe('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const text = readText(`/proc/${name}/stat`)
    if (text !== null) stats.set(Number(name), text)
  }
  const tree = new Set([pid])
  for (let grew = true; grew; ) {
    grew = false
    for (const [child, text] of stats) {
      if (!tree.has(child) && tree.has(parseParentPid(text))) {
        tree.add(child)
        grew = true
      }
    }
  }
  return [...tree].map((member) => stats.get(member) ?? '')
}

/**
 * CPU time of a process and every live descendant (API_PROCESSES > 1 serves from
 * child processes), in ms.
 */
export function processCpuMs(pid: number): number | null {
  const tree = processTree(pid)
  return tree === null ? null : tree.reduce((sum, text) => sum + (parseProcStat(text) ?? 0), 0)
}

/** Bytes of a page; /proc/<pid>/stat counts resident memory in pages. */
const PAGE_BYTES = 4096

/** Resident memory from the text of /proc/<pid>/stat (field 24), in bytes. */
export function parseRssBytes(text: string): number {
  const pages = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[21])
  return Number.isFinite(pages) ? pages * PAGE_BYTES : 0
}

export interface Rss {
  /** the process and every live descendant together, bytes */
  total: number
  /** the largest single process among them, bytes */
  largest: number
}

/** Resident memory of a process and its live descendants. */
export function processRss(pid: number): Rss | null {
  const tree = processTree(pid)
  if (tree === null) return null
  const each = tree.map(parseRssBytes)
  return { total: each.reduce((a, b) => a + b, 0), largest: Math.max(0, ...each) }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}
