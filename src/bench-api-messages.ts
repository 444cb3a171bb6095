/** The messages the API answers with, for the load generator (see bench-api.ts). */
export { compatComments, refusalMessages } from './http/issue-endpoint.js'
