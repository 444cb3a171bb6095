/** Request and response schemas (TypeBox → JSON Schema: validation, serialization, OpenAPI). */
import { type Static, Type } from '@sinclair/typebox'
import { MAX_CODES_PER_CALL } from '../domain/codes.js'
import { COUPON_TYPE, INT32_MAX } from '../domain/coupon.js'
import { IDEMPOTENCY_KEY_PATTERN } from '../domain/request-id.js'
import { USER_ID_PATTERN } from '../domain/user-id.js'

const Amount = Type.Integer({ minimum: 0, maximum: INT32_MAX })
const Quantity = Type.Union([Type.Integer({ minimum: 1, maximum: INT32_MAX }), Type.Null()], {
  description: 'null = unlimited',
})
const InstantIn = Type.String({
  format: 'date-time',
  description: 'ISO-8601 with offset, e.g. 2026-11-24T13:00:00+09:00',
})
/** Serialized from a Date by fast-json-stringify (toISOString, UTC). */
const InstantOut = Type.Unsafe<Date>({ type: 'string', format: 'date-time' })
/** No NUL: PostgreSQL's text cannot hold one, and no database should be asked to. */
export const NO_NUL = '^[^\\u0000]*$'
const Title = Type.String({ minLength: 1, maxLength: 255, pattern: NO_NUL })
const DrawAtIn = Type.Union([InstantIn, Type.Null()], {
  description:
    'the opening draw (docs/draw.md): from issueStart until drawAt a request is an entry (202), at drawAt the entrants are shuffled and the first totalQuantity win; issueStart < drawAt <= issueEnd, needs a totalQuantity; null: no draw. Changeable until the draw has run (then 409 DRAW_DONE)',
})

export const UserIdIn = Type.Union(
  [
    Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    Type.String({ pattern: USER_ID_PATTERN }),
  ],
  { description: 'a positive integer, or 1..64 characters of [A-Za-z0-9_.:@-]' },
)

/**
 * A coupon id in a path: up to 15 digits, so every id it admits is a safe integer
 * (16 digits would let 9007199254740993 through, read as a different number).
 */
export const COUPON_ID_DIGITS = '[1-9][0-9]{0,14}'

export const CouponIdParams = Type.Object({
  couponId: Type.String({ pattern: `^${COUPON_ID_DIGITS}$`, description: 'coupon id' }),
})

export const IssueHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      pattern: IDEMPOTENCY_KEY_PATTERN,
      description:
        '1..64 of [A-Za-z0-9_.:-], chosen by the client per attempt to win: a retry with the same key and user (after a 503 or a timeout) gets the original answer, 201 with the same rank, not ALREADY_ISSUED',
    }),
  ),
})

export const IssueParams = Type.Object({
  couponId: CouponIdParams.properties.couponId,
  userId: Type.String({ pattern: USER_ID_PATTERN }),
})

export const CreateCouponBody = Type.Object(
  {
    title: Title,
    type: Type.Optional(Type.Literal(COUPON_TYPE)),
    totalQuantity: Quantity,
    discountAmount: Amount,
    minAvailableAmount: Amount,
    issueStart: InstantIn,
    issueEnd: InstantIn,
    drawAt: Type.Optional(DrawAtIn),
  },
  { additionalProperties: false },
)
export type CreateCouponBody = Static<typeof CreateCouponBody>

export const PatchCouponBody = Type.Object(
  {
    title: Type.Optional(Title),
    totalQuantity: Type.Optional(Quantity),
    discountAmount: Type.Optional(Amount),
    minAvailableAmount: Type.Optional(Amount),
    issueStart: Type.Optional(InstantIn),
    issueEnd: Type.Optional(InstantIn),
    drawAt: Type.Optional(DrawAtIn),
  },
  { additionalProperties: false },
)
export type PatchCouponBody = Static<typeof PatchCouponBody>

export const IssueBody = Type.Object({ userId: UserIdIn }, { additionalProperties: false })
/** With user auth on, the user is the token's `sub`; a body, if any, may repeat it. */
export const IssueBodyAuthed = Type.Object(
  { userId: Type.Optional(UserIdIn) },
  { additionalProperties: false },
)

export const CompatIssueBody = Type.Object(
  {
    userId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    couponId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  },
  { additionalProperties: false },
)

export const ErrorBody = Type.Object({ code: Type.String(), message: Type.String() })

const couponFields = {
  id: Type.Integer(),
  title: Type.String(),
  type: Type.Literal(COUPON_TYPE),
  totalQuantity: Type.Union([Type.Integer(), Type.Null()]),
  issuedQuantity: Type.Integer({ description: 'coupons persisted so far' }),
  discountAmount: Type.Integer(),
  minAvailableAmount: Type.Integer(),
  issueStart: InstantOut,
  issueEnd: InstantOut,
  createdAt: InstantOut,
  updatedAt: InstantOut,
  drawAt: Type.Union([InstantOut, Type.Null()], { description: 'the opening draw; null: none' }),
  drawCommitment: Type.Union([Type.String(), Type.Null()], {
    description:
      "hex SHA-256 of the draw's secret seed, shown from the moment drawAt is set; the seed is revealed after the draw (GET …/draw)",
  }),
}
export const CouponOut = Type.Object(couponFields)
export const CouponViewOut = Type.Object({
  ...couponFields,
  remainingQuantity: Type.Union([Type.Integer(), Type.Null()], {
    description: 'coupons left to win; null when unlimited',
  }),
})
export const CouponListOut = Type.Object({ items: Type.Array(CouponOut) })

export const IssueOut = Type.Object({
  couponId: Type.Integer(),
  userId: Type.String(),
  rank: Type.Integer({ description: '1-based order in which the gate accepted the win' }),
  code: Type.Optional(
    Type.String({
      description:
        "the win's partner code (code number rank), when the coupon has codes: in this answer to the winner's own request",
    }),
  ),
})

/** Shown only to the callers who may spend the coupon (see each route). */
const PartnerCode = Type.Union([Type.String(), Type.Null()], {
  description: "the win's partner code (code number rank); null when the coupon has none for it",
})

export const IssueStatusOut = Type.Object({
  couponId: Type.Integer(),
  userId: Type.String(),
  rank: Type.Integer(),
  state: Type.Union([Type.Literal('QUEUED'), Type.Literal('ISSUED'), Type.Literal('USED')]),
  issuedAt: InstantOut,
  usedAt: Type.Union([InstantOut, Type.Null()]),
  orderId: Type.Union([Type.String(), Type.Null()], {
    description: 'the order the coupon was spent on; null while unused',
  }),
  code: Type.Optional(PartnerCode),
})

/** An entry in a coupon's draw (docs/draw.md). */
export const EntryOut = Type.Object({
  couponId: Type.Integer(),
  userId: Type.String(),
  state: Type.Literal('ENTERED'),
  drawAt: Type.String({ format: 'date-time', description: 'when the draw runs' }),
})

export const EntryStatusOut = Type.Object({
  couponId: Type.Integer(),
  userId: Type.String(),
  state: Type.Literal('ENTERED'),
  drawAt: InstantOut,
})

export const StatsOut = Type.Object({
  couponId: Type.Integer(),
  totalQuantity: Type.Union([Type.Integer(), Type.Null()]),
  codes: Type.Integer({ description: 'partner codes the coupon holds (0: none)' }),
  limit: Type.Union([Type.Integer(), Type.Null()], {
    description:
      'the quantity that applies: the codes while the coupon has fewer than totalQuantity (or is unlimited and has any), else totalQuantity; null when unlimited',
  }),
  won: Type.Integer({ description: 'wins accepted by the gate' }),
  persisted: Type.Integer({ description: 'rows in coupon_issues' }),
  queued: Type.Integer({ description: 'won − persisted' }),
  remaining: Type.Union([Type.Integer(), Type.Null()], { description: 'limit − won' }),
})

export const CompatOut = Type.Object({
  isSuccess: Type.Boolean(),
  comment: Type.Optional(Type.String()),
})

/** An order id: what the order service calls the order. */
const OrderId = Type.String({
  pattern: '^[A-Za-z0-9_.:@-]{1,64}$',
  description: '1..64 characters of [A-Za-z0-9_.:@-]',
})

export const UseBody = Type.Object(
  {
    orderId: OrderId,
    orderAmount: Type.Integer({
      minimum: 0,
      maximum: INT32_MAX,
      description: 'the order total; at least the coupon minAvailableAmount',
    }),
  },
  { additionalProperties: false },
)

export const CancelQuery = Type.Object({ orderId: OrderId }, { additionalProperties: false })

export const UserParams = Type.Object({ userId: IssueParams.properties.userId })

export const UseOut = Type.Object({
  couponId: Type.Integer(),
  userId: Type.String(),
  orderId: Type.String(),
  discountAmount: Type.Integer(),
  usedAt: InstantOut,
})

export const CouponBoxOut = Type.Object({
  items: Type.Array(
    Type.Object({
      couponId: Type.Integer(),
      title: Type.String(),
      discountAmount: Type.Integer(),
      minAvailableAmount: Type.Integer(),
      rank: Type.Integer(),
      state: IssueStatusOut.properties.state,
      issuedAt: InstantOut,
      usedAt: Type.Union([InstantOut, Type.Null()]),
      orderId: Type.Union([Type.String(), Type.Null()]),
      code: PartnerCode,
    }),
  ),
})

/** A code upload: the codes (JSON, or a CSV body read into this shape), or how many to make up. */
export const CodeUploadBody = Type.Object(
  {
    codes: Type.Optional(
      Type.Array(Type.String(), {
        maxItems: MAX_CODES_PER_CALL,
        description:
          'each 1..128 printable ASCII characters (U+0020..U+007E), no space at either end; unique within the coupon',
      }),
    ),
    generate: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_CODES_PER_CALL,
        description: 'make up this many codes: 16 characters of Crockford base32, from a CSPRNG',
      }),
    ),
  },
  { additionalProperties: false, description: 'exactly one of codes and generate' },
)

export const CodeCountOut = Type.Object({
  codes: Type.Integer({ description: 'how many codes the coupon holds' }),
})
