/**
 * Containers for the deployment tests: podman (and docker-compose through podman's
 * Docker-compatible socket) with the project's own settings (deploy/podman, read
 * by scripts/podman-env.sh). Without podman the tests skip saying why, except in
 * CI (CI=true), where they run and fail.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { IN_CI } from './services.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The image the tests build from the Dockerfile (not the tag a user builds). */
export const TEST_IMAGE = 'localhost/firstcome:test'

/** What scripts/podman-env.sh exports, for commands run from the tests. */
export function podmanEnv(socket?: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CONTAINERS_CONF: `${ROOT}deploy/podman/containers.conf`,
    BUILDAH_FORMAT: 'docker',
    DISABLE_HC_SYSTEMD: 'true',
    ...(socket ? { FIRSTCOME_PODMAN_SOCKET: socket, DOCKER_HOST: `unix://${socket}` } : {}),
  }
}

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
  /** resolve with a non-zero code instead of rejecting */
  allowFail?: boolean
}

/** Runs a command to its end (from the repository root). */
export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const { env = podmanEnv(), timeoutMs = 120_000, allowFail = false } = options
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
        if (code !== 0 && !allowFail) {
          const tail = `${stdout}\n${stderr}`.slice(-4000)
          reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${tail}`))
          return
        }
        resolve({ code, stdout, stderr })
      },
    )
  })
}

export const podman = (args: string[], options?: RunOptions) => run('podman', args, options)

async function installed(cmd: string): Promise<boolean> {
  return (await run(cmd, ['--version'], { allowFail: true }).catch(() => null))?.code === 0
}

/** `false` when podman (and docker-compose, if asked) can be used; otherwise why to skip. */
export async function skipUnlessPodman(withCompose = false): Promise<string | false> {
  if (IN_CI) return false
  const missing = []
  if (!(await installed('podman'))) missing.push('podman')
  if (withCompose && !(await installed('docker-compose'))) missing.push('docker-compose')
  if (missing.length === 0) return false
  return `${missing.join(' and ')} not installed (apt-get install podman docker-compose debootstrap runc; in CI this fails)`
}

/**
 * Every image the deployment needs, built as scripts/container-images.sh does:
 * the base stand-ins once per machine, firstcome's image from its layer cache.
 */
export async function buildImages(): Promise<void> {
  await run('scripts/container-images.sh', [TEST_IMAGE], { timeoutMs: 30 * 60_000 })
}

/** The host port published for a container port (`podman port`). */
export async function publishedPort(container: string, port: number): Promise<number> {
  const { stdout } = await podman(['port', container, `${port}/tcp`])
  const m = /:(\d+)\s*$/m.exec(stdout.trim())
  if (!m) throw new Error(`no published port for ${container}:${port}: ${stdout}`)
  return Number(m[1])
}
