export async function runBench(_args: string[]): Promise<void> {
  throw new Error('bench is not built yet')
}
