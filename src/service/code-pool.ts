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
 * An unlimited coupon (`totalQuantity` null) takes any number of codes; once it
 * has codes, they are its limit.
 */

import {
  CODES_PER_STATEMENT,
  countCodes,
  findCodes,
  insertCodes,
  lockPool,
  setPoolSize,
} from '../db/codes-repo.js'
import { findCoupon, lockCoupons } from '../db/coupons-repo.js'
import { type Db, dialectOf } from '../db/database.js'
import {
  codeProblem,
  generateCodes,
  MAX_CODES_PER_CALL,
  type RandomSource,
} from '../domain/codes.js'
import { AppError, UnavailableError } from '../domain/errors.js'

/** What an upload carries: the codes, or how many to make up. */
export type CodeUpload = { codes: readonly string[] } | { generate: number }

export interface CodePoolDeps {
  db: Db
  /** a CSPRNG (tests give one that repeats itself, to make codes collide) */
  random?: RandomSource
}

/** How often one position's generated code may collide before the upload gives up. */
const GENERATE_ATTEMPTS = 5

export class CodePool {
  readonly #db: Db
  readonly #random: RandomSource | undefined

  constructor(deps: CodePoolDeps) {
    this.#db = deps.db
    this.#random = deps.random
  }

  /** How many codes the coupon holds. */
  count(couponId: number): Promise<number> {
    return countCodes(this.#db, couponId)
  }

  /** Appends the codes; answers the coupon's total. */
  async add(couponId: number, upload: CodeUpload): Promise<number> {
    const generate = 'generate' in upload
    const codes = generate ? generateCodes(upload.generate, this.#random) : upload.codes
    if (!generate) checkCodes(codes)
    const coupon = await findCoupon(this.#db, couponId)
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', `coupon ${couponId} does not exist`)
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const held = await lockPool(trx, couponId)
        // Checked now to spare a doomed insert, and again under the row lock.
        checkRoom(coupon.totalQuantity, held, codes.length)
        const per = CODES_PER_STATEMENT[dialectOf(trx)]
        for (let i = 0; i < codes.length; i += per) {
          const batch = codes.slice(i, i + per)
          const inserted = await insertCodes(trx, couponId, held + i + 1, batch)
          if (inserted === batch.length) continue
          if (generate) await this.#redraw(trx, couponId, held + i + 1, batch)
          else throw await duplicateIn(trx, couponId, held, i, batch)
        }
        await lockCoupons(trx, [couponId])
        const now = await findCoupon(trx, couponId)
        checkRoom(now?.totalQuantity ?? null, held, codes.length)
        await setPoolSize(trx, couponId, held + codes.length)
        return held + codes.length
      })
    } catch (err) {
      if (err instanceof AppError || err instanceof UnavailableError) throw err
      throw new UnavailableError('database', err)
    }
  }

  /**
   * Generated codes that met a duplicate (80 random bits each: rarely, if ever)
   * are drawn again at the same numbers until each is new.
   */
  async #redraw(trx: Db, couponId: number, firstSeq: number, drawn: readonly string[]) {
    const batch = [...drawn]
    for (let attempt = 1; ; attempt++) {
      const stored = await findCodes(trx, couponId, batch)
      const free = batch.flatMap((code, i) => (stored.get(code) === firstSeq + i ? [] : [i]))
      if (free.length === 0) return
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

/** Each code valid (400 naming the first that is not) and at most a million. */
function checkCodes(codes: readonly string[]) {
  if (codes.length === 0) throw new AppError('VALIDATION_FAILED', 'codes: none given')
  if (codes.length > MAX_CODES_PER_CALL)
    throw new AppError(
      'VALIDATION_FAILED',
      `codes: at most ${MAX_CODES_PER_CALL.toLocaleString('en')} per call`,
    )
  for (let i = 0; i < codes.length; i++) {
    const problem = codeProblem(codes[i] as string)
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
