/** The messages the API answers with (`firstcome/bench-api/messages`). */
export { compatComments, refusalMessages } from 'firstcome/bench-api/messages'
