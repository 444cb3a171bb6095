/** The messages the API answers with, for the load generator (see bench-api.ts). */
export { compatComments } from './http/compat-routes.js'
export { refusalMessages } from './service/issue-service.js'
