/**
 * The event page in a real browser (Debian's chromium, driven by playwright-core),
 * on a 390 px phone screen: it counts down on the server's clock while the
 * phone's runs an hour ahead, keeps the button disabled until the opening, then
 * shows the win and its rank without a reload; it says so for a user who already
 * won, a sold-out coupon and a closed event; it speaks Korean (rendered, not as
 * boxes) or English by Accept-Language; a draw coupon takes two users' entries
 * after the opening and shows each the draw's result without a reload (one
 * won, one not drawn); with user auth on it takes the token
 * from the fragment and sends no userId. No horizontal overflow anywhere.
 * Screenshots are kept in a temporary directory whose path is printed.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import {
  drawsGlyphs,
  horizontalOverflow,
  launchChromium,
  skipWithoutChromium,
} from '../helpers/browser.js'
import { serversOnOneDatabase } from '../helpers/processes.js'

const TOKEN = 'event-page-admin-token'
const JWT_SECRET = 'event-page-jwt-secret-0123456789abcdef'
const HOUR = 3_600_000

describe('the event page in a browser', {
  skip: skipWithoutChromium(),
}, () => {
  const servers = serversOnOneDatabase()
  const shots = mkdtempSync(join(tmpdir(), 'firstcome-event-page-'))
  let browser: Browser
  let url: string
  let authUrl: string

  before(async () => {
    url = (await servers.start({ adminToken: TOKEN })).url
    authUrl = (await servers.start({ adminToken: TOKEN, env: { JWT_SECRET } })).url
    browser = await launchChromium()
  })
  after(async () => {
    await browser?.close()
    process.stdout.write(`event page screenshots: ${shots}\n`)
  })

  async function createCoupon(
    fields: { title?: string; total: number; start: number; end: number; drawAt?: number },
    base = url,
  ) {
    const res = await fetch(`${base}/v1/coupons`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        title: fields.title ?? '네고왕 선착순 쿠폰',
        totalQuantity: fields.total,
        discountAmount: 100_000,
        minAvailableAmount: 110_000,
        issueStart: new Date(fields.start).toISOString(),
        issueEnd: new Date(fields.end).toISOString(),
        ...(fields.drawAt ? { drawAt: new Date(fields.drawAt).toISOString() } : {}),
      }),
    })
    assert.equal(res.status, 201)
    return ((await res.json()) as { id: number }).id
  }

  async function win(couponId: number, userId: string): Promise<number> {
    const res = await fetch(`${url}/v1/coupons/${couponId}/issues`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId }),
    })
    assert.equal(res.status, 201)
    return ((await res.json()) as { rank: number }).rank
  }

  /** A phone: 390 px wide, a language, its own clock skewed by `skewMs`. */
  async function phone(locale: 'ko-KR' | 'en-US', skewMs = 0): Promise<BrowserContext> {
    const context = await browser.newContext({ locale, viewport: { width: 390, height: 844 } })
    if (skewMs) await context.clock.install({ time: Date.now() + skewMs })
    return context
  }

  const outcome = (page: Page, text: string) =>
    page.locator('#outcome', { hasText: text }).waitFor({ timeout: 15_000 })

  async function enterId(page: Page, userId: string) {
    await page.locator('#user-id').fill(userId)
    await page.locator('#user-id').press('Enter')
  }

  async function fitsAndShoot(page: Page, name: string) {
    assert.equal(await horizontalOverflow(page), 0, `horizontal overflow at 390 px (${name})`)
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
  }

  it("counts down on the server's clock, opens on time, shows the win without a reload", async (t) => {
    t.diagnostic(`screenshots in ${shots}`)
    const start = Date.now() + 8_000
    const id = await createCoupon({ total: 5, start, end: start + HOUR })
    const context = await phone('en-US', HOUR)
    try {
      const page = await context.newPage()
      await page.goto(`${url}/e/${id}`)
      await page.locator('#countdown', { hasText: /^00:00:0[1-8]$/ }).waitFor()
      const phoneAhead = Number(await page.evaluate('Date.now()')) - Date.now()
      assert.ok(phoneAhead > HOUR - 60_000, `the phone's clock runs ahead (${phoneAhead} ms)`)
      assert.equal(await page.locator('#when').textContent(), 'Opens in')
      assert.equal(await page.locator('#claim').isDisabled(), true)
      assert.equal(await page.locator('#claim').textContent(), 'Get the coupon')
      assert.equal(await page.locator('#offer').textContent(), '₩100,000 off')
      await enterId(page, 'page-user')
      await fitsAndShoot(page, '1-countdown')
      // When the button comes on, on the phone's clock less its skew: the real time.
      await page.evaluate(`(() => {
        window.loadedOnce = true
        const claim = document.querySelector('#claim')
        new MutationObserver(() => { if (!claim.disabled) window.enabledAt ??= Date.now() })
          .observe(claim, { attributes: true })
      })()`)
      await page.locator('#claim:enabled').waitFor({ timeout: 20_000 })
      const enabledAt = Number(await page.evaluate('window.enabledAt')) - HOUR
      assert.ok(
        enabledAt - start > -700 && enabledAt - start < 3_000,
        `enabled ${enabledAt - start} ms from the opening`,
      )
      await page.locator('#claim').click()
      await outcome(page, 'You got the coupon! Rank 1')
      assert.equal(await page.evaluate('window.loadedOnce'), true, 'the page was not reloaded')
      const status = await fetch(`${url}/v1/coupons/${id}/issues/page-user`)
      assert.equal(((await status.json()) as { rank: number }).rank, 1)
      await fitsAndShoot(page, '2-won')
    } finally {
      await context.close()
    }
  })

  it('enters two users in a draw, then shows each the result without a reload', async () => {
    const start = Date.now() + 5_000
    const drawAt = start + 5_000
    const id = await createCoupon({
      title: '네고왕 추첨',
      total: 1,
      start,
      end: start + HOUR,
      drawAt,
    })
    const contexts = [await phone('en-US'), await phone('ko-KR')]
    try {
      const pages = await Promise.all(contexts.map((c) => c.newPage()))
      for (const [i, page] of pages.entries()) {
        await page.goto(`${url}/e/${id}`)
        await enterId(page, `draw-user-${i}`)
        assert.equal(await page.locator('#claim').isDisabled(), true, 'disabled before the opening')
        await page.evaluate('window.loadedOnce = true')
      }
      assert.equal(await pages[0]?.locator('#claim').textContent(), 'Enter the draw')
      for (const page of pages) {
        await page.locator('#claim:enabled').waitFor({ timeout: 20_000 })
        await page.locator('#claim').click()
      }
      await outcome(pages[0] as Page, 'You are in the draw')
      await outcome(pages[1] as Page, '추첨에 응모했어요')
      await fitsAndShoot(pages[0] as Page, '7-entered')
      // After drawAt each page asks for its result by itself: one won, one not.
      const results = await Promise.all(
        pages.map(async (page) => {
          await page
            .locator('#outcome', { hasText: /Rank 1|Not drawn|순번 1번|당첨되지/ })
            .waitFor({ timeout: 30_000 })
          assert.equal(await page.evaluate('window.loadedOnce'), true, 'not reloaded')
          return (await page.locator('#outcome').textContent()) ?? ''
        }),
      )
      const won = results.filter((r) => !/Not drawn|당첨되지/.test(r))
      assert.equal(won.length, 1, results.join(' / '))
      const koreanPage = pages[1] as Page
      await fitsAndShoot(koreanPage, '8-drawn-ko')
      const status = await fetch(`${url}/v1/coupons/${id}/draw`)
      assert.equal(status.status, 200)
    } finally {
      for (const c of contexts) await c.close()
    }
  })

  it('tells a user who already won, at once or after a click', async () => {
    const id = await createCoupon({ total: 5, start: Date.now() - HOUR, end: Date.now() + HOUR })
    assert.equal(await win(id, 'early-bird'), 1)
    const context = await phone('en-US')
    try {
      const page = await context.newPage()
      await page.goto(`${url}/e/${id}`)
      await enterId(page, 'early-bird')
      await outcome(page, 'You already have this coupon (rank 1)')
      assert.equal(await page.locator('#claim').isHidden(), true)
      // Another tab of the same user wins first; then the click here.
      await enterId(page, 'racer')
      await page.locator('#claim:enabled').waitFor()
      assert.equal(await win(id, 'racer'), 2)
      await page.locator('#claim').click()
      await outcome(page, 'You already have this coupon (rank 2)')
      await fitsAndShoot(page, '3-already')
    } finally {
      await context.close()
    }
  })

  it('says sold out, after a click and on the next visit', async () => {
    const id = await createCoupon({ total: 1, start: Date.now() - HOUR, end: Date.now() + HOUR })
    const context = await phone('en-US')
    try {
      const page = await context.newPage()
      await page.goto(`${url}/e/${id}`)
      await enterId(page, 'too-late')
      await page.locator('#claim:enabled').waitFor()
      assert.equal(await win(id, 'fastest'), 1)
      await page.locator('#claim').click()
      await outcome(page, 'All coupons are gone.')
      const again = await context.newPage()
      await again.goto(`${url}/e/${id}`)
      await outcome(again, 'All coupons are gone.')
      assert.equal(await again.locator('#user-id').inputValue(), 'too-late', 'the id is remembered')
      await fitsAndShoot(again, '4-sold-out')
    } finally {
      await context.close()
    }
    // A first visit: sold out on arrival, and still once the visitor gives an id.
    const newcomer = await phone('en-US')
    try {
      const page = await newcomer.newPage()
      await page.goto(`${url}/e/${id}`)
      await outcome(page, 'All coupons are gone.')
      await enterId(page, 'first-visit')
      await page.waitForTimeout(500)
      assert.equal(await page.locator('#outcome').textContent(), 'All coupons are gone.')
      assert.equal(await page.locator('#claim').isHidden(), true)
    } finally {
      await newcomer.close()
    }
  })

  it('takes an opening moved earlier after the page was loaded, without a reload', async () => {
    const id = await createCoupon({
      total: 5,
      start: Date.now() + HOUR,
      end: Date.now() + 2 * HOUR,
    })
    const context = await phone('en-US')
    await context.clock.install({ time: Date.now() })
    try {
      const page = await context.newPage()
      await page.goto(`${url}/e/${id}`)
      await enterId(page, 'moved-up')
      await page.locator('#when', { hasText: 'Opens in' }).waitFor()
      assert.equal(await page.locator('#claim').isDisabled(), true)
      const moved = await fetch(`${url}/v1/coupons/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ issueStart: new Date(Date.now() - 1000).toISOString() }),
      })
      assert.equal(moved.status, 200)
      // The page looks again within 40 s.
      await page.clock.fastForward(41_000)
      await page.locator('#claim:enabled').waitFor({ timeout: 15_000 })
      await page.locator('#claim').click()
      await outcome(page, 'You got the coupon! Rank 1')
    } finally {
      await context.close()
    }
  })

  it('says a closed event has ended', async () => {
    const id = await createCoupon({
      total: 5,
      start: Date.now() - 2 * HOUR,
      end: Date.now() - HOUR,
    })
    const context = await phone('en-US')
    try {
      const page = await context.newPage()
      await page.goto(`${url}/e/${id}`)
      await outcome(page, 'This event has ended.')
      assert.equal(await page.locator('#claim').isHidden(), true)
      await fitsAndShoot(page, '5-closed')
    } finally {
      await context.close()
    }
  })

  it('speaks Korean to a Korean browser, in glyphs rather than boxes', async () => {
    const id = await createCoupon({ total: 5, start: Date.now() - HOUR, end: Date.now() + HOUR })
    const context = await phone('ko-KR')
    try {
      const page = await context.newPage()
      await page.goto(`${url}/e/${id}`)
      await page.locator('#claim:enabled').waitFor()
      assert.equal(await page.getAttribute('html', 'lang'), 'ko')
      assert.equal(await page.locator('#claim').textContent(), '쿠폰 받기')
      assert.equal(await page.locator('#offer').textContent(), '100,000원 할인')
      assert.equal(await page.locator('#minimum').textContent(), '110,000원 이상 구매 시')
      await enterId(page, 'ko-user')
      await page.locator('#claim').click()
      await outcome(page, '쿠폰을 받았어요! 순번 1번')
      assert.equal(await drawsGlyphs(page, '#outcome', '쿠', '폰'), true, 'glyphs, not boxes')
      await fitsAndShoot(page, '6-korean')
    } finally {
      await context.close()
    }
  })

  it('with user auth, takes the token from the fragment and sends no userId', async () => {
    const id = await createCoupon(
      { total: 5, start: Date.now() - HOUR, end: Date.now() + HOUR },
      authUrl,
    )
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('token-user')
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(JWT_SECRET))
    const context = await phone('en-US')
    try {
      const page = await context.newPage()
      const sent: { body: string | null; auth: string | undefined }[] = []
      page.on('request', (r) => {
        if (r.method() === 'POST')
          sent.push({ body: r.postData(), auth: r.headers().authorization })
      })
      await page.goto(`${authUrl}/e/${id}#token=${jwt}`)
      await page.locator('#claim:enabled').waitFor()
      assert.equal(new URL(page.url()).hash, '', 'the token is out of the address bar')
      assert.equal(await page.locator('#user-form').isHidden(), true)
      await page.locator('#claim').click()
      await outcome(page, 'You got the coupon! Rank 1')
      assert.deepEqual(sent, [{ body: '{}', auth: `Bearer ${jwt}` }])
      await page.reload()
      await outcome(page, 'You already have this coupon (rank 1)')
      await fitsAndShoot(page, '7-user-auth')
    } finally {
      await context.close()
    }
  })
})
