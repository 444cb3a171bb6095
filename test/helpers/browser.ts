/**
 * Browser tests' shared parts: Debian's chromium as playwright-core launches it
 * here, and checks of what a person sees (overflow, glyphs).
 */
import { type Browser, chromium, type Page } from 'playwright-core'
import { skipUnlessInstalled } from './services.js'

export const CHROMIUM = '/usr/bin/chromium'
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

/** The `skip` of a browser suite: chromium and the CJK fonts must be installed. */
export const skipWithoutChromium = () => skipUnlessInstalled(CHROMIUM, 'chromium fonts-noto-cjk')

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS })
}

/** How many pixels the page is wider than the screen. */
export async function horizontalOverflow(page: Page): Promise<number> {
  return Number(
    await page.evaluate(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    ),
  )
}

/**
 * Whether two characters are drawn as glyphs in the font of `selector`: with no
 * font that has them both are the same box, like a private-use character's.
 */
export async function drawsGlyphs(page: Page, selector: string, a: string, b: string) {
  const script = `(() => {
    const family = getComputedStyle(document.querySelector(${JSON.stringify(selector)})).fontFamily
    const draw = (text) => {
      const canvas = document.createElement('canvas')
      canvas.width = canvas.height = 64
      const g = canvas.getContext('2d')
      g.font = '40px ' + family
      g.fillText(text, 8, 48)
      return Array.from(g.getImageData(0, 0, 64, 64).data).join()
    }
    const [first, second, box] = [draw(${JSON.stringify(a)}), draw(${JSON.stringify(b)}), draw('\\ue000')]
    return first !== second && first !== box && second !== box
  })()`
  return Boolean(await page.evaluate(script))
}
