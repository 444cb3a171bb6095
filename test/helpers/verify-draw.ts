/** `firstcome verify-draw` run as the real command, in a child process. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { FROM_SOURCES } from './processes.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export interface CommandRun {
  status: number | null
  stdout: string
  stderr: string
  /** both, for assertion messages */
  output: string
}

export function verifyDrawCommand(
  url: string,
  couponId: number,
  extra: string[] = [],
): Promise<CommandRun> {
  const args = [...FROM_SOURCES, 'src/main.ts', 'verify-draw']
  args.push('--url', url, '--coupon', String(couponId), ...extra)
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8')
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  return new Promise((resolve) =>
    child.once('close', (status) =>
      resolve({ status, stdout, stderr, output: `${stdout}\n${stderr}` }),
    ),
  )
}
