/** The report as the terminal shows it: the original README's table, side by side with the baseline. */
import type { BenchReport, RunReport } from './report.js'

export const fmtInt = (v: number) => Math.round(v).toLocaleString('en-US')

export function fmtMs(ms: number): string {
  if (ms >= 100) return `${fmtInt(ms)} ms`
  if (ms >= 10) return `${ms.toFixed(1)} ms`
  return `${ms.toFixed(2)} ms`
}

export const fmtPct = (rate: number) => `${(rate * 100).toFixed(3)}%`

export function describeLoad(r: BenchReport): string {
  const l = r.load
  const shape =
    l.shape === 'open'
      ? `${fmtInt(l.rate ?? 0)} req/s offered (open loop, up to ${fmtInt(l.connections)} connections)`
      : `${fmtInt(l.connections)} looping connections${l.rampSeconds > 0 ? ` (opened over ${l.rampSeconds} s)` : ''}`
  const fc = r.runs.firstcome
  const coupon = `coupon #${fc.couponId} (${fc.quantity === null ? 'unlimited' : fmtInt(fc.quantity)})`
  const warm = l.warmupSeconds > 0 ? ` after a ${l.warmupSeconds} s warm-up` : ''
  return `${l.scenario}: ${shape} for ${l.durationSeconds} s${warm}; users ${l.users}; ${coupon}`
}

export type Row = [label: string, pick: (r: RunReport) => string, ratio?: string]

const mib = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(1)} MiB`)
const cpu = (c: RunReport['clientCpu'] | null) =>
  c ? `${c.meanCores.toFixed(2)} core, ${c.perRequestMicros} µs/req` : 'n/a'

/** The figures of each run, one row each, as both the text and the HTML report show them. */
export function summaryRows(r: BenchReport): Row[] {
  return [
    ['Total requests', (x) => fmtInt(x.requests.total)],
    ['Failed requests', (x) => fmtInt(x.requests.failed)],
    ['Failure rate', (x) => fmtPct(x.requests.failureRate)],
    ['RPS', (x) => fmtInt(x.throughput), r.ratios ? r.ratios.throughput.toFixed(3) : undefined],
    ['p50', (x) => fmtMs(x.latencyMs.p50)],
    ['p70', (x) => fmtMs(x.latencyMs.p70)],
    ['p90', (x) => fmtMs(x.latencyMs.p90)],
    ['p95', (x) => fmtMs(x.latencyMs.p95)],
    ['p99', (x) => fmtMs(x.latencyMs.p99), r.ratios ? r.ratios.p99.toFixed(3) : undefined],
    ['max', (x) => fmtMs(x.latencyMs.max)],
    [
      'First request on a connection',
      (x) => {
        const f = x.firstRequestOnConnectionMs
        if (f.count === 0) return 'none (opened before the load)'
        return `${fmtInt(f.count)}: p50 ${fmtMs(f.p50)}, p99 ${fmtMs(f.p99)}, max ${fmtMs(f.max)}`
      },
    ],
    ['  timeouts', (x) => fmtInt(x.requests.timeouts)],
    ['  connection errors', (x) => fmtInt(x.requests.connectionErrors)],
    ['  unexpected status', (x) => fmtInt(x.requests.unexpectedStatus)],
    ['Wall time', (x) => `${x.wallSeconds.toFixed(1)} s`],
    [
      'Listen overflows/drops',
      (x) =>
        x.listenQueue ? `${x.listenQueue.listenOverflows}/${x.listenQueue.listenDrops}` : 'n/a',
    ],
    ['Client CPU', (x) => cpu(x.clientCpu)],
    [
      'Server CPU',
      (x) => cpu(x.serverCpu),
      r.ratios?.serverCpuPerRequest ? r.ratios.serverCpuPerRequest.toFixed(3) : undefined,
    ],
    ['Server RSS (peak)', (x) => mib(x.serverPeakRssMb)],
    ['  largest process', (x) => mib(x.serverPeakProcessRssMb)],
  ]
}

export function renderText(r: BenchReport): string {
  const fc = r.runs.firstcome
  const base = r.runs.baseline
  const runs = base ? [fc, base] : [fc]
  const rows = summaryRows(r)
  const keys = [...new Set(runs.flatMap((x) => Object.keys(x.outcomes)))].sort()
  for (const key of keys) rows.push([`  ${key}`, (x) => fmtInt(x.outcomes[key] ?? 0)])

  const header = ['', 'firstcome', ...(base ? ['baseline', 'ratio'] : [])]
  const table = [header]
  for (const [label, pick, ratio] of rows) {
    table.push([label, ...runs.map(pick), ...(base ? [ratio ?? ''] : [])])
  }
  table.splice(table.length - keys.length, 0, [
    'Outcomes',
    ...runs.map(() => ''),
    ...(base ? [''] : []),
  ])
  const widths = header.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)))
  const lines = table.map((row) =>
    row
      .map((cell, i) =>
        i === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart((widths[i] ?? 0) + 2),
      )
      .join('')
      .trimEnd(),
  )

  const out = [
    '',
    `firstcome bench — ${describeLoad(r)}`,
    `client: ${r.load.client}, ${r.load.clientProcesses} process${r.load.clientProcesses === 1 ? '' : 'es'}; timeout ${r.load.timeoutSeconds} s`,
    `target: ${fc.target} — ${fc.server}`,
    ...(base ? [`baseline: ${base.target} — ${base.server}`] : []),
    '',
    ...lines,
  ]
  for (const x of runs) {
    if (x.errorSamples.length > 0)
      out.push('', `connection errors (${x.server}): ${x.errorSamples.join('; ')}`)
  }
  out.push(...serverLogLines(r))
  if (r.invariants) {
    out.push('', `Invariants (${r.invariantsPass ? 'all pass' : 'FAILED'})`)
    for (const line of r.invariants) {
      const mark = line.ok === null ? '-' : line.ok ? '✓' : '✗'
      out.push(`  ${mark} ${line.name}: ${line.detail}`)
    }
  }
  if (r.ratios) {
    out.push(
      '',
      `firstcome/baseline: throughput ${r.ratios.throughput.toFixed(3)}, p99 ${r.ratios.p99.toFixed(3)}${r.ratios.serverCpuPerRequest ? `, server CPU per request ${r.ratios.serverCpuPerRequest.toFixed(3)}` : ''}`,
    )
  }
  out.push('', `command: ${r.command}`, '')
  return out.join('\n')
}

/** The started server's warnings and errors: none is a line too, so a clean log is seen. */
export function serverLogLines(r: BenchReport): string[] {
  const log = r.serverLog
  if (!log) return []
  const plural = (n: number, word: string) => `${fmtInt(n)} ${word}${n === 1 ? '' : 's'}`
  return [
    '',
    `Server log (firstcome, start to stop): ${plural(log.warnings, 'warning')}, ${plural(log.errors, 'error')}`,
    ...log.messages.map((m) => `  ${m.level} ×${fmtInt(m.count)}  ${m.message}`),
  ]
}
