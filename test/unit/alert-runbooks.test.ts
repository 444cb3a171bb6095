/**
 * Every alert an operator can be paged with leads somewhere: its rule in
 * deploy/monitoring/alerts.yml carries a runbook_url to its own section of
 * docs/operations.md, that section exists, and the runbook names the alert. The
 * runbook's links to its own sections lead somewhere too.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { parse } from 'yaml'

const ROOT = new URL('../../', import.meta.url)
const RUNBOOK = 'docs/operations.md'

interface Rule {
  alert?: string
  record?: string
  annotations?: Record<string, string>
}

function alertRules(): (Rule & { alert: string })[] {
  const text = readFileSync(new URL('deploy/monitoring/alerts.yml', ROOT), 'utf8')
  const doc = parse(text) as { groups: { rules: Rule[] }[] }
  return doc.groups
    .flatMap((g) => g.rules)
    .filter((r): r is Rule & { alert: string } => r.alert !== undefined)
}

/** The anchors a Markdown renderer (GitHub's rules) gives the headings of a document. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  let fenced = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced
    const m = fenced ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line)
    if (!m?.[1]) continue
    const slug = m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-')
    const n = seen.get(slug) ?? 0
    seen.set(slug, n + 1)
    anchors.add(n === 0 ? slug : `${slug}-${n}`)
  }
  return anchors
}

describe('alert runbooks', () => {
  const rules = alertRules()
  const runbook = readFileSync(new URL(RUNBOOK, ROOT), 'utf8')
  const anchors = headingAnchors(runbook)

  it('reads the rules and the headings', () => {
    assert.ok(rules.length >= 9, `${rules.length} alert rules`)
    assert.ok(anchors.has('the-event-day') && anchors.has('redis-down'), [...anchors].join(' '))
  })

  it('gives every alert a runbook_url to its own section of the runbook', () => {
    const urls = new Set<string>()
    for (const rule of rules) {
      const url = rule.annotations?.runbook_url
      assert.ok(url, `${rule.alert} has a runbook_url`)
      const m = new RegExp(`^${RUNBOOK.replace('.', '\\.')}#([a-z0-9_-]+)$`).exec(url)
      assert.ok(m?.[1], `${rule.alert}: ${url} is ${RUNBOOK}#<section>`)
      assert.ok(anchors.has(m[1]), `${rule.alert}: ${RUNBOOK} has no heading for #${m[1]}`)
      assert.ok(!urls.has(url), `${rule.alert} shares ${url} with another alert`)
      urls.add(url)
    }
  })

  it('names every alert in the runbook', () => {
    for (const rule of rules) {
      assert.ok(
        new RegExp(`\\b${rule.alert}\\b`).test(runbook),
        `${rule.alert} is not named in ${RUNBOOK}`,
      )
    }
  })

  it("resolves the runbook's links to its own sections", () => {
    const links = [...runbook.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1] as string)
    assert.ok(links.length > 0)
    for (const anchor of links) assert.ok(anchors.has(anchor), `#${anchor} is not a heading`)
  })

  it('finds anchors as a Markdown renderer does', () => {
    const anchorsOf = (md: string) => [...headingAnchors(md)]
    assert.deepEqual(anchorsOf('## Pool starvation: slow queries, locks'), [
      'pool-starvation-slow-queries-locks',
    ])
    assert.deepEqual(anchorsOf('### FirstcomeNoWorker\n## Before\n### Before'), [
      'firstcomenoworker',
      'before',
      'before-1',
    ])
    assert.deepEqual(anchorsOf('```sh\n# not a heading\n```\n# Title'), ['title'])
  })
})
