/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core):
 * it opens with the token, creates a coupon from its form, follows a storm sent
 * through the API (counters and chart change without a reload), shows the
 * server's error for a refused change, stops the event after a confirmation
 * (the API then answers ISSUE_ENDED), and fits a 390 px wide phone screen.
 * Screenshots are kept in a temporary directory whose path is printed.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type Browser, chromium, type Page } from 'playwright-core'
import { serversOnOneDatabase } from '../helpers/processes.js'
import { skipUnlessInstalled } from '../helpers/services.js'
import { httpPool, issueOnce, storm } from '../helpers/storm.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'dashboard-admin-token'
const TITLE = '블랙프라이데이 선착순'

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
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  })
  after(async () => {
    await browser?.close()
    process.stdout.write(`dashboard screenshots: ${shots}\n`)
  })

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
