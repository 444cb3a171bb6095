/**
 * A coupon's code pool: uploads of partner codes, appended in order, all or
 * nothing. Code number r goes to the win of rank r.
 *
 * One upload is one transaction:
 *   1. the pool lock (coupon_code_pools): uploads of one coupon take turns, and
 *      the codes held so far are counted;
 *   2. the codes inserted in large statements, numbered on from that count; the
 *      coupon's UNIQUE (coupon_id, code) index is the duplicate check, against
 *      the stored codes and within the call alike (a statement that inserts
 *      fewer rows than it was given met a duplicate, named by a query on the
 *      spot; generated codes that collide are drawn again in their place);
 *   3. the coupon's row lock, taken only now and briefly (the stream worker takes
 *      it for every batch), and the quantity checked against it: a PATCH lowering
 *      `totalQuantity` checks the codes under the same lock, so the pool never
 *      holds more codes than the coupon's quantity whatever runs at once;
 *   4. the new count, commit.
 * Any refusal rolls the whole transaction back: nothing of the call is stored.
 *
 * Then, once committed, the codes go to the gate (`StockGate.appendCodes`), whose
 * limit they raise in the same step: a coupon with codes never grants more wins
 * than the gate holds codes, so no rank is granted before its code is committed,
 * and every node sees the new limit at once (embedded: the one process; Redis: the
 * list issue.lua reads). Then every node's cache hears the coupon changed (a
 * SOLD_OUT it holds is no longer certain). Uploads reaching the gate out of order
 * are put in order there: a gap is filled from the database. A gate that cannot be
 * reached answers 503 (the codes are stored) and is caught up in the background.
 *
 * An unlimited coupon (`totalQuantity` null) takes any number of codes; once it
 * has codes, they are its limit.
 */

import {
  CODES_PER_STATEMENT,
  codesFrom,
  countCodes,
  findCodes,
  insertCodes,
  lockPool,
  setPoolSize,
} from '../db/codes-repo.js'
import { findCoupon, sharedQuantity } from '../db/coupons-repo.js'
import { type Db, dialectOf } from '../db/database.js'
import {
  CodeList,
  codeProblem,
  generateCodes,
  MAX_CODES_PER_CALL,
  type RandomSource,
} from '../domain/codes.js'
import { AppError, UnavailableError } from '../domain/errors.js'
import type { CouponEvents } from '../events/coupon-events.js'
import type { StockGate } from '../gate/stock-gate.js'

/**
 * What an upload carries: the codes (an array, as JSON gives them, or a CodeList,
 * as a CSV body is read into), or how many to make up.
 */
export type CodeUpload = { codes: readonly string[] | CodeList } | { generate: number }

/** Codes read back in ranges: an array, or a CodeList. */
type Codes = Pick<CodeList, 'length' | 'slice'>

export interface CodePoolDeps {
  db: Db
  /** a CSPRNG (tests give one that repeats itself, to make codes collide) */
  random?: RandomSource
  /** the gate whose limit the codes raise (none: stored only, as by a test's loader) */
  gate?: StockGate
  /** every node's caches hear of new codes */
  events?: CouponEvents
  onSyncError?: (couponId: number, err: unknown) => void
}

/** Codes per call to the gate: one Redis script call each, a megabyte or so. */
const GATE_CHUNK = 10_000
const SYNC_RETRY_MS = { min: 200, max: 5000 }

/** How often one position's generated code may collide before the upload gives up. */
const GENERATE_ATTEMPTS = 5

export class CodePool {
  readonly #db: Db
  readonly #random: RandomSource | undefined
  readonly #gate: StockGate | undefined
  readonly #events: CouponEvents | undefined
  readonly #onSyncError: (couponId: number, err: unknown) => void
  /** coupons whose gate must still take stored codes, with the retry timer */
  readonly #behind = new Map<number, NodeJS.Timeout>()

  constructor(deps: CodePoolDeps) {
    this.#db = deps.db
    this.#random = deps.random
    this.#gate = deps.gate
    this.#events = deps.events
    this.#onSyncError = deps.onSyncError ?? (() => {})
  }

  /** How many codes the coupon holds. */
  async count(couponId: number): Promise<number> {
    if (!(await findCoupon(this.#db, couponId)))
      throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
    return countCodes(this.#db, couponId)
  }

  /** Appends the codes and raises the gate's limit; answers the coupon's total. */
  async add(couponId: number, upload: CodeUpload): Promise<number> {
    const { total, firstSeq, codes } = await this.#store(couponId, upload)
    try {
      await this.#toGate(couponId, firstSeq, codes)
    } catch (err) {
      this.#onSyncError(couponId, err)
      this.#retry(couponId, SYNC_RETRY_MS.min)
      // Not "retry shortly": sent again, the same codes would be DUPLICATE_CODE.
      throw new AppError(
        'UNAVAILABLE',
        `The ${codes.length} codes are stored (the coupon holds ${total}), but the gate has not taken them yet: do not send them again. It takes them in the background once it is reachable; until then the limit is the codes it holds (see the stats' limit).`,
      )
    }
    await this.#events?.publish(couponId).catch(() => {})
    return total
  }

  /**
   * Brings the gate up to the codes the database holds (after a failure to reach
   * it): reads the gate's count, then the codes after it.
   */
  async sync(couponId: number): Promise<void> {
    const gate = this.#gate
    if (!gate) return
    const held = await gate.appendCodes(couponId, 1, [])
    if (held === 'NOT_LOADED') return
    await this.#fill(gate, couponId, held + 1, Number.POSITIVE_INFINITY)
    await this.#events?.publish(couponId).catch(() => {})
  }

  /** The committed codes numbered from `firstSeq`, to the gate in chunks. */
  async #toGate(couponId: number, firstSeq: number, codes: Codes) {
    const gate = this.#gate
    if (!gate) return
    for (let i = 0; i < codes.length; ) {
      const seq = firstSeq + i
      const held = await gate.appendCodes(couponId, seq, codes.slice(i, i + GATE_CHUNK))
      if (held === 'NOT_LOADED') return // its load reads every code from the database
      if (held < seq - 1) await this.#fill(gate, couponId, held + 1, seq - 1)
      else i = held - firstSeq + 1
    }
  }

  /** Codes `from`..`to` (as far as stored), read from the database, to the gate. */
  async #fill(gate: StockGate, couponId: number, from: number, to: number) {
    for (let seq = from; seq <= to; ) {
      const codes = await codesFrom(this.#db, couponId, seq, Math.min(GATE_CHUNK, to - seq + 1))
      if (codes.length === 0) return
      const held = await gate.appendCodes(couponId, seq, codes)
      if (held === 'NOT_LOADED') return
      seq = held + 1
    }
  }

  #retry(couponId: number, delayMs: number) {
    if (this.#behind.has(couponId) && delayMs === SYNC_RETRY_MS.min) return
    const timer = setTimeout(() => {
      this.sync(couponId).then(
        () => this.#behind.delete(couponId),
        (err: unknown) => {
          this.#onSyncError(couponId, err)
          this.#retry(couponId, Math.min(SYNC_RETRY_MS.max, delayMs * 2))
        },
      )
    }, delayMs)
    timer.unref()
    this.#behind.set(couponId, timer)
  }

  /** Stops the background catch-ups (at close). */
  close(): void {
    for (const timer of this.#behind.values()) clearTimeout(timer)
    this.#behind.clear()
  }

  async #store(
    couponId: number,
    upload: CodeUpload,
  ): Promise<{ total: number; firstSeq: number; codes: Codes }> {
    const generate = 'generate' in upload
    const codes = generate ? generated(upload.generate, this.#random) : upload.codes
    checkCodes(codes)
    const coupon = await findCoupon(this.#db, couponId)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const held = await lockPool(trx, couponId)
        // Checked now to spare a doomed insert, and again under the row lock.
        checkRoom(coupon.totalQuantity, held, codes.length)
        await this.#checkWins(couponId, held, codes.length)
        const per = CODES_PER_STATEMENT[dialectOf(trx)]
        for (let i = 0; i < codes.length; i += per) {
          const batch = codes.slice(i, i + per)
          const inserted = await insertCodes(trx, couponId, held + i + 1, batch)
          if (inserted === batch.length) continue
          if (generate) {
            // the codes as stored, for the gate
            const stored = await this.#redraw(trx, couponId, held + i + 1, batch)
            for (const [k, code] of stored.entries()) (codes as CodeList).set(i + k, code)
          } else throw await duplicateIn(trx, couponId, held, i, batch)
        }
        checkRoom((await sharedQuantity(trx, couponId)) ?? null, held, codes.length)
        await this.#checkWins(couponId, held, codes.length)
        await setPoolSize(trx, couponId, held + codes.length)
        return { total: held + codes.length, firstSeq: held + 1, codes }
      })
    } catch (err) {
      if (err instanceof AppError || err instanceof UnavailableError) throw err
      throw new UnavailableError('database', err)
    }
  }

  /**
   * A coupon with codes never has more wins than codes. Once it holds some, its
   * wins stop at them; the first upload must hold one for each win made
   * without (rank r gets code r).
   */
  async #checkWins(couponId: number, held: number, adding: number): Promise<void> {
    if (held > 0 || !this.#gate) return
    const won = await this.#gate.won(couponId)
    if (won > adding)
      throw new AppError(
        'TOO_FEW_CODES',
        `the coupon has ${won} wins and no codes yet: a first upload needs a code for each ` +
          `(${adding} given); nothing was stored`,
      )
  }

  /**
   * Generated codes that met a duplicate (80 random bits each: rarely, if ever)
   * are drawn again at the same numbers until each is new.
   */
  async #redraw(
    trx: Db,
    couponId: number,
    firstSeq: number,
    drawn: readonly string[],
  ): Promise<string[]> {
    const batch = [...drawn]
    for (let attempt = 1; ; attempt++) {
      const stored = await findCodes(trx, couponId, batch)
      const free = batch.flatMap((code, i) => (stored.get(code) === firstSeq + i ? [] : [i]))
      if (free.length === 0) return batch
      if (attempt > GENERATE_ATTEMPTS) throw new Error('generated codes keep colliding')
      const fresh = generateCodes(free.length, this.#random)
      for (const [k, i] of free.entries()) {
        const code = fresh[k] as string
        batch[i] = code
        await insertCodes(trx, couponId, firstSeq + i, [code])
      }
    }
  }
}

/**
 * `n` generated codes, in a CodeList: made PART at a time, never a million small
 * strings at once.
 */
function generated(n: number, random: RandomSource | undefined): CodeList {
  const list = new CodeList()
  for (let i = 0; i < n; i += GATE_CHUNK)
    for (const code of generateCodes(Math.min(GATE_CHUNK, n - i), random)) list.push(code)
  return list
}

/**
 * Each code valid (400 naming the first that is not) and at most a million. A
 * CodeList is valid by construction: only its count is checked.
 */
function checkCodes(codes: Codes) {
  if (codes.length === 0) throw new AppError('VALIDATION_FAILED', 'codes: none given')
  if (codes.length > MAX_CODES_PER_CALL)
    throw new AppError(
      'VALIDATION_FAILED',
      `codes: at most ${MAX_CODES_PER_CALL.toLocaleString('en')} per call`,
    )
  if (codes instanceof CodeList) return
  const list = codes as readonly string[]
  for (let i = 0; i < list.length; i++) {
    const problem = codeProblem(list[i] as string)
    if (problem) throw new AppError('VALIDATION_FAILED', `code #${i + 1} ${problem}`)
  }
}

function checkRoom(totalQuantity: number | null, held: number, adding: number) {
  if (totalQuantity === null || held + adding <= totalQuantity) return
  throw new AppError(
    'TOO_MANY_CODES',
    `the coupon holds ${held} codes and its totalQuantity is ${totalQuantity}: ` +
      `${adding} more would exceed it; nothing was stored`,
  )
}

/**
 * The first code of the batch that did not go in, and what it duplicates: a code
 * stored before this call (with its number), or one earlier in this call.
 */
async function duplicateIn(
  trx: Db,
  couponId: number,
  held: number,
  offset: number,
  batch: readonly string[],
): Promise<AppError> {
  const stored = await findCodes(trx, couponId, batch)
  for (const [i, code] of batch.entries()) {
    const seq = stored.get(code)
    const position = offset + i + 1
    if (seq === undefined || seq === held + position) continue
    const what =
      seq <= held
        ? `is already in the coupon (code number ${seq})`
        : `appears twice in this call (also code #${seq - held})`
    return new AppError(
      'DUPLICATE_CODE',
      `code #${position} ${JSON.stringify(code)} ${what}; nothing was stored`,
    )
  }
  return new AppError('DUPLICATE_CODE', 'a code is already in the coupon; nothing was stored')
}
