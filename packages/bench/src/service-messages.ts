/** The messages the API answers with (firstcome's src/bench-api-messages.ts). */
import type * as Messages from '../../../src/bench-api-messages.js'
import { surfaceUrl } from './service.js'

const messages: typeof Messages = await import(surfaceUrl('bench-api-messages'))

export const { compatComments, refusalMessages } = messages
