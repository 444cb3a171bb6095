/**
 * The wins this process answered lately, per coupon: what Redis may lose when it
 * loses the tail of its AOF (appendfsync everysec: about a second), or when a
 * replica that had not yet received them takes its place. After a catch-up or a
 * reconnect each is looked up once in the caught-up gate (CouponState's audit):
 * one it no longer holds was answered and will never be a row, and is counted
 * and logged with its user. Kept for RECENT_MS, at most MAX_WINS.
 *
 * Kept packed in buffers, in slices of SLICE_MS, not as objects and strings: at
 * tens of thousands of wins a second, seconds' worth of small objects on the
 * heap are what every young-generation collection copies and then promotes,
 * which made the collector the audit's whole cost. A buffer's bytes are outside
 * the heap; a slice is dropped whole once its newest win is older than RECENT_MS.
 */

export interface RecentWin {
  couponId: number
  userId: string
  rank: number
  requestId?: string | undefined
}

/** Longer than any loss window the docs give for AOF everysec or a replica's lag. */
export const RECENT_MS = 5000
const SLICE_MS = 250
const MAX_WINS = 200_000

interface Slice {
  /** when its first win was answered (epoch ms) */
  readonly from: number
  /** when its last win was answered */
  to: number
  /** each win: rank (float64), then user id and request id, each a uint16 length and UTF-8 */
  readonly chunks: Buffer[]
  /** bytes written in each chunk but the last */
  readonly ends: number[]
  /** bytes written in the last chunk */
  used: number
  wins: number
}

/**
 * A slice's first chunk is small and each next one twice the last, up to
 * CHUNK_BYTES: a slice is made per coupon every SLICE_MS that it has a win, and
 * with many coupons most slices hold a few wins, not a chunk's worth.
 */
const FIRST_CHUNK_BYTES = 1024
const CHUNK_BYTES = 64 * 1024
/** a request id's length for none */
const NO_REQUEST = 0xffff

export class RecentWins {
  readonly #byCoupon = new Map<number, Slice[]>()
  #size = 0
  /** when what aged out was last forgotten */
  #trimmedAt = Number.NEGATIVE_INFINITY

  /** A win answered at `at` (epoch ms). */
  add(couponId: number, userId: string, rank: number, requestId: string | undefined, at: number) {
    let slices = this.#byCoupon.get(couponId)
    if (!slices) {
      slices = []
      this.#byCoupon.set(couponId, slices)
    }
    let last = slices[slices.length - 1]
    if (!last || at - last.from >= SLICE_MS) {
      // a new slice is the moment to forget what aged out, everywhere: once a
      // slice's time at most, not per coupon (each trim visits every coupon)
      if (at - this.#trimmedAt >= SLICE_MS) {
        this.#trimmedAt = at
        this.#trim(at)
      }
      last = { from: at, to: at, chunks: [], ends: [], used: 0, wins: 0 }
      slices.push(last)
      this.#byCoupon.set(couponId, slices)
    }
    last.to = at
    write(last, userId, rank, requestId)
    if (++this.#size > MAX_WINS) this.#dropOldest()
  }

  /** The coupons with recent wins. */
  coupons(): number[] {
    return [...this.#byCoupon.keys()]
  }

  /** The coupon's recent wins, no longer kept (each is audited once). */
  take(couponId: number): RecentWin[] {
    const slices = this.#byCoupon.get(couponId) ?? []
    this.#byCoupon.delete(couponId)
    const wins: RecentWin[] = []
    for (const s of slices) read(s, couponId, wins)
    this.#size -= wins.length
    return wins
  }

  /** Wins taken but not audited (the lookup failed), kept for the next audit. */
  putBack(wins: readonly RecentWin[], at: number) {
    for (const w of wins) this.add(w.couponId, w.userId, w.rank, w.requestId, at)
  }

  #trim(now: number) {
    const oldest = now - RECENT_MS
    for (const [couponId, slices] of this.#byCoupon) {
      let from = 0
      while (from < slices.length && (slices[from] as Slice).to < oldest) {
        this.#size -= (slices[from] as Slice).wins
        from++
      }
      if (from > 0) slices.splice(0, from)
      if (slices.length === 0) this.#byCoupon.delete(couponId)
    }
  }

  /** Past the bound: the oldest slices go, whichever coupon they are of. */
  #dropOldest() {
    while (this.#size > MAX_WINS / 2) {
      let oldest: { couponId: number; slices: Slice[] } | undefined
      for (const [couponId, slices] of this.#byCoupon) {
        const first = slices[0] as Slice
        if (!oldest || first.from < (oldest.slices[0] as Slice).from) oldest = { couponId, slices }
      }
      if (!oldest) return
      const dropped = oldest.slices.shift() as Slice
      this.#size -= dropped.wins
      if (oldest.slices.length === 0) this.#byCoupon.delete(oldest.couponId)
    }
  }
}

function write(s: Slice, userId: string, rank: number, requestId: string | undefined) {
  // at most 3 UTF-8 bytes per UTF-16 unit
  const most = 12 + 3 * (userId.length + (requestId?.length ?? 0))
  let chunk = s.chunks[s.chunks.length - 1]
  if (!chunk || s.used + most > chunk.length) {
    if (chunk) s.ends.push(s.used)
    const size = chunk ? Math.min(CHUNK_BYTES, 2 * chunk.length) : FIRST_CHUNK_BYTES
    chunk = Buffer.allocUnsafeSlow(Math.max(size, most))
    s.chunks.push(chunk)
    s.used = 0
  }
  let at = chunk.writeDoubleLE(rank, s.used)
  const userBytes = chunk.write(userId, at + 2, 'utf8')
  chunk.writeUInt16LE(userBytes, at)
  at += 2 + userBytes
  if (requestId === undefined) at = chunk.writeUInt16LE(NO_REQUEST, at)
  else {
    const requestBytes = chunk.write(requestId, at + 2, 'utf8')
    chunk.writeUInt16LE(requestBytes, at)
    at += 2 + requestBytes
  }
  s.used = at
  s.wins++
}

function read(s: Slice, couponId: number, into: RecentWin[]) {
  s.chunks.forEach((chunk, i) => {
    const end = s.ends[i] ?? s.used
    let at = 0
    while (at < end) {
      const rank = chunk.readDoubleLE(at)
      const userBytes = chunk.readUInt16LE(at + 8)
      const userId = chunk.toString('utf8', at + 10, at + 10 + userBytes)
      at += 10 + userBytes
      const requestBytes = chunk.readUInt16LE(at)
      let requestId: string | undefined
      if (requestBytes === NO_REQUEST) at += 2
      else {
        requestId = chunk.toString('utf8', at + 2, at + 2 + requestBytes)
        at += 2 + requestBytes
      }
      into.push({ couponId, userId, rank, requestId })
    }
  })
}
