/**
 * Webhook signatures as a receiver checks them, the URL rules (scheme,
 * WEBHOOK_ALLOWED_HOSTS) and the retry schedule.
 */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { backoffMs } from '../../src/events/event-pump.js'
import {
  parseAllowedHosts,
  sign,
  urlProblem,
  verifySignature,
} from '../../src/events/webhook-delivery.js'

describe('webhook signature', () => {
  const secret = 'whsec_test_secret_0123456789'
  const body = '{"events":[{"id":1}]}'

  it('is t=<unix>,v1=<hex HMAC-SHA256 of "t.body">', () => {
    const header = sign(secret, body, 1_700_000_000)
    const hex = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex')
    assert.equal(header, `t=1700000000,v1=${hex}`)
  })

  it('verifies; refuses another body, another secret, an old timestamp, garbage', () => {
    const now = 1_700_000_000
    const header = sign(secret, body, now)
    assert.ok(verifySignature(secret, body, header, 300, now + 10))
    assert.ok(!verifySignature(secret, `${body} `, header, 300, now))
    assert.ok(!verifySignature('another-secret-0123456', body, header, 300, now))
    assert.ok(!verifySignature(secret, body, header, 300, now + 301))
    assert.ok(!verifySignature(secret, body, undefined, 300, now))
    assert.ok(!verifySignature(secret, body, 'v1=abc', 300, now))
    assert.ok(!verifySignature(secret, body, `t=${now},v1=00`, 300, now))
    // several v1 (a secret being rolled): any one matching is enough
    const [t, v1] = header.split(',')
    assert.ok(verifySignature(secret, body, `${t},v1=deadbeef,${v1}`, 300, now))
  })
})

describe("the receiver's check in docs/events.md", () => {
  it('verifies what the dispatcher signs, and refuses a changed body or an old timestamp', async () => {
    const doc = readFileSync(new URL('../../docs/events.md', import.meta.url), 'utf8')
    const sample = /```js\n([\s\S]*?)```/.exec(doc)?.[1]
    assert.ok(sample, 'docs/events.md has a js sample')
    const dir = mkdtempSync(join(tmpdir(), 'firstcome-doc-'))
    try {
      const file = join(dir, 'verify.mjs')
      writeFileSync(file, sample)
      const { verifyFirstcome } = (await import(pathToFileURL(file).href)) as {
        verifyFirstcome: (s: string, b: string, h: string | undefined, tol?: number) => boolean
      }
      const secret = 'whsec_doc_sample_secret'
      const body = '{"webhookId":1,"events":[{"id":7}]}'
      const now = Math.floor(Date.now() / 1000)
      assert.ok(verifyFirstcome(secret, body, sign(secret, body, now)))
      assert.ok(!verifyFirstcome(secret, `${body}\n`, sign(secret, body, now)))
      assert.ok(!verifyFirstcome('whsec_other', body, sign(secret, body, now)))
      assert.ok(!verifyFirstcome(secret, body, sign(secret, body, now - 3600)))
      assert.ok(!verifyFirstcome(secret, body, undefined))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('webhook URLs', () => {
  it('takes http and https only, without credentials', () => {
    for (const bad of ['ftp://a.example/x', 'file:///etc/passwd', 'gopher://a', 'nope', '//a.b']) {
      assert.match(String(urlProblem(bad, null)), /http/, bad)
    }
    assert.match(String(urlProblem('https://u:p@a.example/x', null)), /credentials/)
    assert.equal(urlProblem('https://hooks.example.com/in', null), null)
    assert.equal(urlProblem('http://127.0.0.1:9000/in', null), null)
  })

  it('WEBHOOK_ALLOWED_HOSTS: host, host:port and *.domain', () => {
    const allowed = parseAllowedHosts('hooks.example.com, 127.0.0.1:9000 ,*.shop.example')
    assert.equal(urlProblem('https://hooks.example.com/in', allowed), null)
    assert.equal(urlProblem('https://HOOKS.example.com:8443/in', allowed), null)
    assert.equal(urlProblem('http://127.0.0.1:9000/in', allowed), null)
    assert.equal(urlProblem('https://crm.shop.example/in', allowed), null)
    for (const bad of [
      'http://127.0.0.1:9001/in',
      'http://169.254.169.254/latest/meta-data',
      'http://localhost:9000/',
      'https://shop.example/in',
      'https://hooks.example.com.evil.example/in',
      'http://10.0.0.1/',
    ]) {
      assert.match(String(urlProblem(bad, allowed)), /WEBHOOK_ALLOWED_HOSTS/, bad)
    }
    assert.deepEqual(parseAllowedHosts(null), null)
  })

  it('WEBHOOK_ALLOWED_HOSTS: IPv6 with and without a port, hosts as a URL writes them', () => {
    const allowed = parseAllowedHosts('::1, [fd00::1], [fd00::2]:9000, 127.1, 0:0:0:0:0:0:0:3')
    for (const ok of [
      'http://[::1]/in',
      'http://[::1]:8080/in',
      'https://[fd00::1]/in',
      'http://[fd00:0::1]:81/in',
      'http://[fd00::2]:9000/in',
      'http://127.0.0.1:7000/in',
      'http://[::3]/in',
    ]) {
      assert.equal(urlProblem(ok, allowed), null, ok)
    }
    for (const bad of ['http://[fd00::2]/in', 'http://[fd00::2]:9001/in', 'http://[::2]/in']) {
      assert.match(String(urlProblem(bad, allowed)), /WEBHOOK_ALLOWED_HOSTS/, bad)
    }
  })
})

describe('retry schedule', () => {
  const s = { timeoutMs: 1000, retryForMs: 86_400_000, retryBaseMs: 1000, retryMaxMs: 3_600_000 }

  it('doubles from the base, capped, with half of it random', () => {
    assert.equal(
      backoffMs(1, s, () => 0),
      500,
    )
    assert.equal(
      backoffMs(1, s, () => 1),
      1000,
    )
    assert.equal(
      backoffMs(4, s, () => 1),
      8000,
    )
    assert.equal(
      backoffMs(30, s, () => 1),
      3_600_000,
    )
    assert.equal(
      backoffMs(1000, s, () => 0),
      1_800_000,
    )
  })
})
