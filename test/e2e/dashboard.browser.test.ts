/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core):
 * it opens with the token, creates a coupon from its form, follows a storm sent
 * through the API (counters and chart change without a reload, the chart
 * spanning the short test), shows the server's error for a refused change,
 * downloads the winners' export, stops
 * the event after a confirmation (the API then answers ISSUE_ENDED), follows an
 * opening draw made from its form (entries open with a countdown, the entrants
 * counted live, then drawn with its winners and a link to the public record),
 * counts a
 * long window down in days, takes times in the time zone the operator chooses
 * (KST by default, the browser's own offered), asks for the token without a
 * stale label, has its icon, and fits a 390 px wide phone screen.
 * Screenshots are kept in a temporary directory whose path is printed.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type Browser, chromium, type Page } from 'playwright-core'
import { serversOnOneDatabase } from '../helpers/processes.js'
import { skipUnlessInstalled } from '../helpers/services.js'
import { httpPool, issueOnce, storm, waitFor } from '../helpers/storm.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'dashboard-admin-token'
const TITLE = '블랙프라이데이 선착순'
const DAY = 86_400_000
const BROWSER_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** The coupon as the API has it (admin). */
async function couponAt(
  url: string,
  id: number,
): Promise<{ issueStart: string; issueEnd: string }> {
  const res = await fetch(`${url}/v1/coupons/${id}`)
  assert.equal(res.status, 200)
  return (await res.json()) as { issueStart: string; issueEnd: string }
}
describe('the dashboard in a browser', {
  skip: skipUnlessInstalled(CHROMIUM, 'chromium fonts-noto-cjk'),
}, () => {
  const servers = serversOnOneDatabase()
  const shots = mkdtempSync(join(tmpdir(), 'firstcome-dashboard-'))
  let browser: Browser
  let page: Page
  let url: string

  before(async () => {
    url = (await servers.start({ adminToken: TOKEN })).url
    browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS })
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  })
  after(async () => {
    await browser?.close()
    process.stdout.write(`dashboard screenshots: ${shots}\n`)
  })

  /** A coupon made through the API, not the page: its id. */
  async function couponByApi(title: string, startMs: number, endMs: number, totalQuantity = 10) {
    const res = await fetch(`${url}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title,
        totalQuantity,
        discountAmount: 1,
        minAvailableAmount: 0,
        issueStart: new Date(startMs).toISOString(),
        issueEnd: new Date(endMs).toISOString(),
      }),
    })
    assert.equal(res.status, 201)
    return ((await res.json()) as { id: number }).id
  }

  const card = (id: number) => page.locator(`[data-coupon="${id}"]`)
  const field = (id: number, name: string) => card(id).locator(`[data-field="${name}"]`)
  const shot = (name: string) =>
    page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })

  it('runs an event: create, watch a storm, see an error, stop', async (t) => {
    t.diagnostic(`screenshots in ${shots}`)
    await page.goto(`${url}/#token=${TOKEN}`)
    await page.locator('#create-panel').waitFor({ state: 'visible' })
    await page.locator('[data-health="database"].up').waitFor()

    await page.locator('#create summary').click()
    const form = page.locator('#create-form')
    await form.locator('[name=title]').fill(TITLE)
    await form.locator('[name=totalQuantity]').fill('50')
    await form.locator('button[type=submit]').click()
    const created = page.locator('[data-coupon]', { hasText: TITLE })
    await created.waitFor()
    const id = Number(await created.getAttribute('data-coupon'))
    assert.ok(id > 0)
    assert.equal(await field(id, 'remaining').textContent(), '50')
    await page.evaluate('window.loadedOnce = true')
    await shot('1-created')

    const pool = httpPool(url, 50)
    try {
      const replies = await storm(
        pool,
        id,
        Array.from({ length: 400 }, (_, i) => `user-${i}`),
      )
      assert.equal(replies.filter((r) => r.status === 201).length, 50)
    } finally {
      await pool.close()
    }
    const inCard = `document.querySelector('[data-coupon="${id}"]')`
    await page.waitForFunction(
      `${inCard}?.querySelector('[data-field="won"]')?.textContent === '50' &&
       ${inCard}?.querySelector('[data-field="remaining"]')?.textContent === '0' &&
       ${inCard}?.querySelector('[data-field="requests"]')?.textContent === '400' &&
       Number(${inCard}?.querySelector('[data-chart]')?.dataset.maxRate) > 1`,
      null,
      { timeout: 20_000 },
    )
    // The chart spans what the page has seen, not a fixed five minutes.
    const spanMs = Number(await card(id).locator('[data-chart]').getAttribute('data-span-ms'))
    assert.ok(spanMs >= 30_000 && spanMs < 120_000, `chart span ${spanMs} ms`)
    assert.equal(await field(id, 'state').textContent(), 'sold out')
    assert.match(String(await page.locator('[data-field="p99"]').textContent()), /ms/)
    assert.equal(await page.evaluate('window.loadedOnce'), true, 'the page was not reloaded')
    await shot('2-after-storm')

    // A change the server refuses: its error is shown.
    await card(id).locator('.actions summary').click()
    await card(id).locator('[name=totalQuantity]').fill('10')
    await card(id).locator('[data-form=edit] button[type=submit]').click()
    await page.waitForFunction(
      `/QUANTITY_BELOW_ISSUED/.test(${inCard}?.querySelector('[data-field="error"]')?.textContent)`,
    )

    // The winners' export: fetched with the token, handed over as a download.
    const [file] = await Promise.all([
      page.waitForEvent('download'),
      card(id).locator('[data-action=export]').click(),
    ])
    assert.equal(file.suggestedFilename(), `coupon-${id}-winners.csv`)
    const csv = readFileSync(await file.path(), 'utf8').split('\r\n')
    assert.equal(csv[0], 'rank,userId,state,issuedAt,usedAt,orderId,code')
    assert.equal(csv.length, 52, 'a header, the 50 winners and the last line break')
    assert.match(csv[1] ?? '', /^1,user-\d+,ISSUED,/)

    page.once('dialog', (dialog) => dialog.accept())
    await card(id).locator('[data-action=stop]').click()
    await page.waitForFunction(
      `${inCard}?.querySelector('[data-field="state"]')?.textContent === 'ended'`,
      null,
      { timeout: 10_000 },
    )
    const late = httpPool(url, 1)
    try {
      const reply = await issueOnce(late, id, 'late-user')
      assert.equal(reply.status, 409)
      assert.equal(reply.code, 'ISSUE_ENDED')
    } finally {
      await late.close()
    }
    await shot('3-stopped')
  })

  it('follows a draw: entries open, entrants counted live, then drawn with its record', {
    timeout: 60_000,
  }, async () => {
    await page.evaluate("document.getElementById('create').open = true")
    const form = page.locator('#create-form')
    await form.locator('[name=title]').fill('추첨 이벤트')
    await form.locator('[name=totalQuantity]').fill('5')
    // The form speaks KST by default: drawAt is 12 s from now, on that wall clock.
    const drawAt = Date.now() + 12_000
    const kst = new Date(drawAt + 9 * 3_600_000).toISOString().slice(0, 19)
    await form
      .locator('[name=issueStart]')
      .fill(new Date(Date.now() - 60_000 + 9 * 3_600_000).toISOString().slice(0, 19))
    await form.locator('[name=drawAt]').fill(kst)
    await form.locator('button[type=submit]').click()
    const created = page.locator('[data-coupon]', { hasText: '추첨 이벤트' })
    await created.waitFor()
    const id = Number(await created.getAttribute('data-coupon'))
    const coupon = (await (await fetch(`${url}/v1/coupons/${id}`)).json()) as {
      drawAt: string
      drawCommitment: string
    }
    assert.equal(coupon.drawAt, new Date(Math.floor(drawAt / 1000) * 1000).toISOString())

    const inCard = `document.querySelector('[data-coupon="${id}"]')`
    const text = (name: string) => `${inCard}?.querySelector('[data-field="${name}"]')?.textContent`
    await page.waitForFunction(
      `${text('drawPhase')} === 'entries open' && /^draw in 0:\\d\\d/.test(${text('drawWhen')})`,
    )
    assert.match(String(await field(id, 'drawLinks').textContent()), /event page/)
    assert.match(
      String(await field(id, 'drawLinks').locator('code').getAttribute('title')),
      new RegExp(`^${coupon.drawCommitment}$`),
    )
    const pool = httpPool(url, 20)
    try {
      const entries = await storm(
        pool,
        id,
        Array.from({ length: 30 }, (_, i) => `entrant-${i}`),
      )
      assert.equal(entries.filter((r) => r.status === 202).length, 30)
    } finally {
      await pool.close()
    }
    await page.waitForFunction(`${text('entrants')} === '30'`, null, { timeout: 10_000 })
    await shot('5-draw-entries')

    await page.waitForFunction(`${text('drawPhase')} === 'drawn'`, null, { timeout: 30_000 })
    assert.equal(await field(id, 'drawWinners').textContent(), '5')
    assert.equal(await field(id, 'entrants').textContent(), '30')
    assert.match(String(await field(id, 'drawWhen').textContent()), /s after drawAt$/)
    const record = field(id, 'drawLinks').locator('[data-link=record]')
    assert.equal(await record.getAttribute('href'), `/v1/coupons/${id}/draw`)
    const published = (await (await fetch(`${url}/v1/coupons/${id}/draw`)).json()) as {
      entrants: number
      winners: string[]
    }
    assert.equal(published.entrants, 30)
    assert.equal(published.winners.length, 5)
    await page.waitForFunction(`${text('won')} === '5'`, null, { timeout: 10_000 })
    assert.equal(await page.evaluate('window.loadedOnce'), true, 'the page was not reloaded')
    await shot('6-drawn')
  })

  it('counts a long window down in days', async () => {
    const id = await couponByApi(
      'long window',
      Date.now() + 3 * DAY + 4 * 3_600_000 + 5 * 60_000 + 30_000,
      Date.now() + 10 * DAY,
    )
    await card(id).waitFor()
    await page.waitForFunction(
      `/^opens in 3d 04:0[45]:\\d\\d$/.test(document.querySelector('[data-coupon="${id}"] [data-field="when"]')?.textContent)`,
      null,
      { timeout: 10_000 },
    )
  })

  it('sends only what the change form changed: a stopped coupon stays stopped', async () => {
    const id = await couponByApi(
      'stopped, then raised',
      Date.now() - 60_000,
      Date.now() + 3_600_000,
      50,
    )
    const patches: string[] = []
    const onRequest = (r: { url(): string; method(): string; postData(): string | null }) => {
      if (r.method() === 'PATCH' && r.url().endsWith(`/v1/coupons/${id}`))
        patches.push(r.postData() ?? '')
    }
    page.on('request', onRequest)
    try {
      await page.goto(`${url}/#token=${TOKEN}`)
      await card(id).waitFor()
      page.once('dialog', (dialog) => dialog.accept())
      await card(id).locator('[data-action=stop]').click()
      await field(id, 'state').filter({ hasText: 'ended' }).waitFor({ timeout: 10_000 })
      const stoppedAt = (await couponAt(url, id)).issueEnd
      // The form, opened after the stop, and only the quantity changed.
      await card(id).locator('.actions summary').click()
      await card(id).locator('[name=totalQuantity]').fill('500')
      await card(id).locator('[data-form=edit] button[type=submit]').click()
      await waitFor('the quantity saved', async () => {
        const res = await fetch(`${url}/v1/coupons/${id}`)
        return ((await res.json()) as { totalQuantity: number }).totalQuantity === 500
      })
      assert.equal((await couponAt(url, id)).issueEnd, stoppedAt, 'still stopped')
      assert.deepEqual(JSON.parse(patches.at(-1) ?? '{}'), { totalQuantity: 500 })
      const late = httpPool(url, 1)
      try {
        assert.equal((await issueOnce(late, id, 'after-the-stop')).code, 'ISSUE_ENDED')
      } finally {
        await late.close()
      }
    } finally {
      page.off('request', onRequest)
    }
  })

  it("takes times in the zone chosen: KST by default, the browser's own offered", async () => {
    // A browser in New York: KST is still the default, its own zone a choice.
    const context = await browser.newContext({ timezoneId: 'America/New_York' })
    try {
      const p = await context.newPage()
      const sent: string[] = []
      p.on('request', (r) => {
        if (r.url().endsWith('/v1/coupons') && r.method() === 'POST') sent.push(r.postData() ?? '')
      })
      await p.goto(`${url}/#token=${TOKEN}`)
      await p.locator('#create summary').click()
      const form = p.locator('#create-form')
      assert.equal(await form.locator('[name=zone]').inputValue(), 'Asia/Seoul')
      const zones = await p.evaluate(
        "[...document.querySelectorAll('#create-form [name=zone] option')].map((o) => o.value)",
      )
      assert.deepEqual(zones, ['Asia/Seoul', 'America/New_York', 'UTC'])
      assert.match(String(await form.locator('label', { hasText: 'Opens' }).textContent()), /KST/)
      await form.locator('[name=title]').fill('zone test')
      await form.locator('[name=issueStart]').fill('2030-01-02T03:04:05')
      await form.locator('[name=issueEnd]').fill('2030-01-03T03:04:05')
      await form.locator('button[type=submit]').click()
      const created = p.locator('[data-coupon]', { hasText: 'zone test' })
      await created.waitFor()
      const id = Number(await created.getAttribute('data-coupon'))
      const body = JSON.parse(sent[0] ?? '{}')
      assert.equal(body.issueStart, '2030-01-02T03:04:05+09:00')
      const c = await couponAt(url, id)
      assert.equal(c.issueStart, '2030-01-01T18:04:05.000Z')
      assert.equal(c.issueEnd, '2030-01-02T18:04:05.000Z')

      // The change form: the same instants, shown again in the zone chosen there.
      await created.locator('.actions summary').click()
      const edit = created.locator('[data-form=edit]')
      assert.equal(await edit.locator('[name=issueStart]').inputValue(), '2030-01-02T03:04:05')
      await edit.locator('[name=zone]').selectOption('UTC')
      assert.equal(await edit.locator('[name=issueStart]').inputValue(), '2030-01-01T18:04:05')
      assert.match(String(await edit.locator('label', { hasText: 'Closes' }).textContent()), /UTC/)
      await edit.locator('[name=issueEnd]').fill('2030-01-05T00:00:00')
      await edit.locator('button[type=submit]').click()
      await waitFor('the change saved', async () => {
        const c = await couponAt(url, id)
        return (
          c.issueEnd === '2030-01-05T00:00:00.000Z' && c.issueStart === '2030-01-01T18:04:05.000Z'
        )
      })
      // The choice is remembered for the next form: the browser's zone.
      await edit.locator('[name=zone]').selectOption('America/New_York')
      await p.reload()
      await p.locator('#create-panel').waitFor({ state: 'visible' })
      assert.equal(await p.locator('#create-form [name=zone]').inputValue(), 'America/New_York')
    } finally {
      await context.close()
    }
  })

  it('asks for the token without a stale label, and has its icon', async () => {
    const context = await browser.newContext()
    try {
      const p = await context.newPage()
      await p.goto(url)
      await p.locator('#cards', { hasText: 'needs the admin token' }).waitFor()
      assert.equal(await p.locator('#status').textContent(), '')
      assert.equal(await p.locator('#token-panel').isVisible(), true)
      const icon = await p.evaluate(`(async () => {
        const href = document.querySelector('link[rel=icon]')?.getAttribute('href') ?? ''
        const res = await fetch(href)
        return { href, status: res.status, type: res.headers.get('content-type') }
      })()`)
      assert.deepEqual(icon, { href: '/favicon.ico', status: 200, type: 'image/svg+xml' })
    } finally {
      await context.close()
    }
  })

  it('fits a 390 px wide phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    await page.waitForTimeout(500)
    const overflow = await page.evaluate(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    )
    assert.equal(overflow, 0, 'horizontal overflow at 390 px')
    await shot('4-phone')
  })
})
