/** The opening draw's check, as `firstcome verify-draw` does it (`firstcome/bench-api/draw`). */
export { type DrawRecord, parseDrawRecord, verifyDraw } from 'firstcome/bench-api/draw'
