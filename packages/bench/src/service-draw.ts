/** The opening draw's check, as `firstcome verify-draw` does it (src/bench-api-draw.ts). */
import type * as Draw from '../../../src/bench-api-draw.js'
import { surfaceUrl } from './service.js'

const draw: typeof Draw = await import(surfaceUrl('bench-api-draw'))

export type DrawRecord = Draw.DrawRecord
export const { parseDrawRecord, verifyDraw } = draw
