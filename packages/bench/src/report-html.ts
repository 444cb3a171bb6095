/**
 * The report as one self-contained HTML file: inline CSS and SVG, no script, no
 * network, so it opens offline and can be attached to an issue. Charts: req/s
 * and errors per second, latency percentiles per second (log scale), outcomes.
 */
import type { BenchReport, RunReport } from './report.js'
import { describeLoad, fmtInt, serverLogLines, summaryRows } from './report-text.js'

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const W = 860
const H = 240
const PAD = { left: 64, right: 16, top: 16, bottom: 32 }

interface Series {
  name: string
  color: string
  points: [number, number][]
  dash?: string
}

function niceMax(v: number): number {
  if (v <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

/** A line chart; `log` puts y on a log10 scale (latencies span orders of magnitude). */
function lineChart(
  title: string,
  series: Series[],
  yLabel: (v: number) => string,
  log = false,
): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = series.flatMap((s) => s.points.map((p) => p[1]))
  const xMax = Math.max(1, ...xs)
  const innerW = W - PAD.left - PAD.right
  const innerH = H - PAD.top - PAD.bottom
  const x = (v: number) => PAD.left + (v / xMax) * innerW
  let y: (v: number) => number
  let ticks: number[]
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...ys.filter((v) => v > 0), 1))))
    const hi = 10 ** Math.ceil(Math.log10(Math.max(lo * 10, ...ys)))
    const span = Math.log10(hi) - Math.log10(lo)
    y = (v) => PAD.top + innerH - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / span) * innerH
    ticks = []
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t)
  } else {
    const hi = niceMax(Math.max(0, ...ys))
    y = (v) => PAD.top + innerH - (v / hi) * innerH
    ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * hi)
  }
  const grid = ticks
    .map(
      (t) =>
        `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" class="grid"/>` +
        `<text x="${PAD.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${esc(yLabel(t))}</text>`,
    )
    .join('')
  const step = niceMax(xMax / 6)
  const xTicks = Array.from({ length: Math.floor(xMax / step) + 1 }, (_, i) => i * step)
    .map((t) => `<text x="${x(t).toFixed(1)}" y="${H - 10}" text-anchor="middle">${t}s</text>`)
    .join('')
  const lines = series
    .filter((s) => s.points.length > 0)
    .map((s) => {
      const d = s.points
        .map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${x(px).toFixed(1)},${y(py).toFixed(1)}`)
        .join('')
      return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`
    })
    .join('')
  const legend = series
    .map(
      (s, i) =>
        `<span class="key"><svg width="18" height="8"><line x1="0" x2="18" y1="4" y2="4" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/></svg>${esc(s.name)}</span>${i < series.length - 1 ? ' ' : ''}`,
    )
    .join('')
  return `<figure><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">${grid}${xTicks}${lines}</svg><div class="legend">${legend}</div></figure>`
}

const COLORS = { firstcome: '#1f6feb', baseline: '#8b949e' }

function throughputChart(runs: [string, RunReport][], durationS: number): string {
  const series: Series[] = []
  for (const [name, run] of runs) {
    const color = name === 'firstcome' ? COLORS.firstcome : COLORS.baseline
    // Only whole seconds of load: the answers that trickle in after the last one
    // (the requests in flight at the end) would read as a collapse.
    const full = run.timeline.filter((b) => b.second < durationS)
    series.push({ name: `${name} req/s`, color, points: full.map((b) => [b.second, b.responses]) })
    if (full.some((b) => b.errors > 0)) {
      series.push({
        name: `${name} errors/s`,
        color: '#d1242f',
        dash: name === 'firstcome' ? undefined : '4 3',
        points: full.map((b) => [b.second, b.errors]),
      })
    }
  }
  return lineChart('Answers per second (whole seconds of load)', series, (v) => fmtInt(v))
}

function latencyChart(name: string, run: RunReport): string {
  const pick = (k: 'p50' | 'p90' | 'p99' | 'max') =>
    run.timeline
      .filter((b) => b.latency.count > 0)
      .map((b) => [b.second, b.latency[k]] as [number, number])
  return lineChart(
    `Latency per second — ${name} (ms, log scale)`,
    [
      { name: 'p50', color: '#2da44e', points: pick('p50') },
      { name: 'p90', color: '#bf8700', points: pick('p90') },
      { name: 'p99', color: '#cf222e', points: pick('p99') },
      { name: 'max', color: '#6e7781', dash: '3 3', points: pick('max') },
    ],
    (v) => (v >= 1 ? fmtInt(v) : String(v)),
    true,
  )
}

function outcomeBars(runs: [string, RunReport][]): string {
  const keys = [...new Set(runs.flatMap(([, r]) => Object.keys(r.outcomes)))].sort()
  const failures = runs.map(([, r]) => r.requests.timeouts + r.requests.connectionErrors)
  const rows: [string, number[]][] = keys.map((k) => [k, runs.map(([, r]) => r.outcomes[k] ?? 0)])
  if (failures.some((f) => f > 0)) {
    rows.push(['timeouts', runs.map(([, r]) => r.requests.timeouts)])
    rows.push(['connection errors', runs.map(([, r]) => r.requests.connectionErrors)])
  }
  const max = Math.max(1, ...rows.flatMap(([, v]) => v))
  const body = rows
    .map(([key, values]) =>
      values
        .map((v, i) => {
          const [name] = runs[i] ?? ['']
          const pct = (v / max) * 100
          const color = name === 'firstcome' ? COLORS.firstcome : COLORS.baseline
          return `<tr><td>${i === 0 ? esc(key) : ''}</td><td>${esc(name)}</td><td class="num">${fmtInt(v)}</td><td class="bar"><div style="width:${pct.toFixed(2)}%;background:${color}"></div></td></tr>`
        })
        .join(''),
    )
    .join('')
  return `<figure><figcaption>Outcomes</figcaption><table class="bars">${body}</table></figure>`
}

function summaryTable(r: BenchReport): string {
  const runs: RunReport[] = r.runs.baseline
    ? [r.runs.firstcome, r.runs.baseline]
    : [r.runs.firstcome]
  const rows = summaryRows(r)
  const head = `<tr><th></th><th>firstcome</th>${r.runs.baseline ? '<th>baseline</th><th>ratio</th>' : ''}</tr>`
  const body = rows
    .map(
      ([label, pick, rt]) =>
        `<tr><td>${esc(label)}</td>${runs.map((x) => `<td class="num">${esc(pick(x))}</td>`).join('')}${r.runs.baseline ? `<td class="num">${esc(rt ?? '')}</td>` : ''}</tr>`,
    )
    .join('')
  return `<table class="summary">${head}${body}</table>`
}

function invariantList(r: BenchReport): string {
  if (!r.invariants) return ''
  const items = r.invariants
    .map((l) => {
      const cls = l.ok === null ? 'skip' : l.ok ? 'pass' : 'fail'
      const mark = l.ok === null ? '–' : l.ok ? '✓' : '✗'
      return `<li class="${cls}"><b>${mark} ${esc(l.name)}</b> — ${esc(l.detail)}</li>`
    })
    .join('')
  return `<h2>Invariants: ${r.invariantsPass ? 'all pass' : 'FAILED'}</h2><ul class="inv">${items}</ul>`
}

function serverLogBlock(r: BenchReport): string {
  const [, head, ...messages] = serverLogLines(r)
  if (!head) return ''
  return `<h2>${esc(head)}</h2>${messages.length ? `<pre>${esc(messages.join('\n'))}</pre>` : ''}`
}

export function renderHtml(r: BenchReport): string {
  const runs: [string, RunReport][] = [['firstcome', r.runs.firstcome]]
  if (r.runs.baseline) runs.push(['baseline', r.runs.baseline])
  const meta = [
    `client: ${r.load.client}, ${r.load.clientProcesses} process(es); timeout ${r.load.timeoutSeconds} s`,
    `target: ${r.runs.firstcome.target} — ${r.runs.firstcome.server}`,
    ...(r.runs.baseline ? [`baseline: ${r.runs.baseline.target} — ${r.runs.baseline.server}`] : []),
    `machine: ${r.machine.cpus} CPUs, Node ${r.machine.node}, ${r.machine.platform}, somaxconn ${r.machine.somaxconn ?? 'n/a'}`,
    `started ${r.startedAt}`,
    `command: ${r.command}`,
  ]
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>firstcome bench — ${esc(r.load.scenario)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:900px;color:#1f2328;padding:0 12px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#59636e;font-size:12.5px;margin:0 0 16px;padding:0;list-style:none}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}.summary th{border-bottom:2px solid #d0d7de}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#59636e}svg .grid{stroke:#eaeef2}
.legend{font-size:12px;color:#59636e}.key{margin-right:12px;white-space:nowrap}.key svg{margin-right:4px}
.bars td{border:0;padding:2px 8px}.bars .bar{width:420px}.bars .bar div{height:12px;min-width:1px}
.inv{list-style:none;padding:0}.inv li{margin:3px 0}.pass b{color:#1a7f37}.fail b{color:#cf222e}.skip b{color:#59636e}
</style></head><body>
<h1>firstcome bench — ${esc(describeLoad(r))}</h1>
<ul class="meta">${meta.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>
${summaryTable(r)}
${r.ratios ? `<p><b>firstcome/baseline:</b> throughput ${r.ratios.throughput.toFixed(3)}, p99 ${r.ratios.p99.toFixed(3)}${r.ratios.serverCpuPerRequest ? `, server CPU per request ${r.ratios.serverCpuPerRequest.toFixed(3)}` : ''}</p>` : ''}
${throughputChart(runs, r.load.durationSeconds)}
${runs.map(([name, run]) => latencyChart(name, run)).join('\n')}
${outcomeBars(runs)}
${invariantList(r)}
${serverLogBlock(r)}
</body></html>
`
}
