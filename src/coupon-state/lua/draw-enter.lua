-- draw-enter.lua: enter a chunk of the draw's winners into the gate, in drawn
-- order, as wins like any other: recorded in users and queued on the stream for
-- the worker to persist. Idempotent: a winner already in users is skipped, so a
-- draw cut short and run again by another process gives the same wins once.
--
-- KEYS[1] users   hash    userId -> "<rank>:<issuedAt ms>:<requestId>"
-- KEYS[2] stream  stream  wins waiting to be persisted
-- KEYS[3] draw    hash    at, state
-- ARGV[1] issuedAt (epoch ms; the draw's drawAt, the same in every run)
-- ARGV[2] '1' when this is the last chunk: the draw is then marked drawn
-- ARGV[3..] pairs of userId, rank
--
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK
--  -10 NO_DRAW   no draw, or already drawn: nothing done

local state = redis.call('HGET', KEYS[3], 'state')
if not state or state == 'drawn' then
  return -10
end
for i = 3, #ARGV, 2 do
  local user, rank = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', KEYS[1], user) == 0 then
    redis.call('HSET', KEYS[1], user, rank .. ':' .. ARGV[1] .. ':draw')
    redis.call('XADD', KEYS[2], '*', 'u', user, 'r', rank, 't', ARGV[1], 'k', 'draw')
  end
end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[3], 'state', 'drawn')
end
return 0
