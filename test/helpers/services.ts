/**
 * Which real services the tests may use. In CI (CI=true) a missing service is a
 * failure; locally the tests that need it are skipped, saying why.
 */
import { existsSync } from 'node:fs'
import { createConnection } from 'node:net'

export const IN_CI = process.env.CI === 'true'

export const SERVICES = {
  redis: { host: '127.0.0.1', port: 6379 },
  postgres: { host: '127.0.0.1', port: 5432 },
  mysql: { host: '127.0.0.1', port: 3306 },
} as const

export type ServiceName = keyof typeof SERVICES

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

const probes = new Map<ServiceName, Promise<boolean>>()

/**
 * `false` when the service can be used; otherwise the reason to skip, for
 * `describe(name, { skip })`. In CI it never skips: the tests run and fail.
 */
export async function skipUnless(name: ServiceName): Promise<string | false> {
  let probe = probes.get(name)
  if (!probe) {
    probe = reachable(SERVICES[name].host, SERVICES[name].port)
    probes.set(name, probe)
  }
  if (await probe) return false
  if (IN_CI) return false
  const { host, port } = SERVICES[name]
  return `${name} is not reachable at ${host}:${port} (start it to run these tests; in CI this fails)`
}

/**
 * `false` when the program is installed; otherwise the reason to skip. In CI it
 * never skips (.ci/run installs it): the tests run and fail.
 */
export function skipUnlessInstalled(path: string, apt: string): string | false {
  if (existsSync(path) || IN_CI) return false
  return `${path} is not installed (apt-get install -y ${apt}; in CI this fails)`
}
