/**
 * The opening draw's check, for the load generator's draw scenario (a module
 * of its own, like its siblings bench-api*.ts: only that scenario loads it):
 * `firstcome verify-draw`'s recomputation of the winners from the two public
 * answers.
 */
export { type DrawRecord, parseDrawRecord } from './draw/record.js'
export { verifyDraw } from './draw/verify.js'
