/**
 * Every StockGate adapter, built for the contract suite. Selected by
 * FIRSTCOME_TEST_GATES (default "memory,redis").
 */
import type { CouponRules } from '../../src/domain/coupon.js'
import { MemoryStockGate } from '../../src/gate/memory-stock-gate.js'
import type { StockGate } from '../../src/gate/stock-gate.js'

export interface GateUnderTest {
  gate: StockGate
  /** Makes a coupon known to the gate the way the service does (create). */
  addCoupon(rules: Omit<CouponRules, 'couponId'>): Promise<number>
  dispose(): Promise<void>
}

export interface GateFactory {
  name: string
  skip(): Promise<string | false>
  create(): Promise<GateUnderTest>
}

export const memoryGate: GateFactory = {
  name: 'memory',
  skip: async () => false,
  async create() {
    const gate = new MemoryStockGate()
    let nextId = 1
    return {
      gate,
      async addCoupon(rules) {
        const couponId = nextId++
        await gate.configure({ couponId, ...rules })
        return couponId
      },
      dispose: () => gate.close(),
    }
  },
}

export const GATE_FACTORIES: GateFactory[] = [memoryGate]

const selected = (process.env.FIRSTCOME_TEST_GATES ?? 'memory,redis')
  .split(',')
  .map((s) => s.trim())

export function selectedGates(): GateFactory[] {
  return GATE_FACTORIES.filter((f) => selected.includes(f.name))
}
