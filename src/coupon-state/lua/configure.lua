-- configure.lua: replace a loaded coupon's rules (admin create / PATCH).
--
-- KEYS[1] meta   hash  start, end, total
-- KEYS[2] users  hash  userId -> "<rank>:<issuedAt ms>[:<requestId>]"
-- ARGV[1] start (epoch ms)
-- ARGV[2] end (epoch ms)
-- ARGV[3] total (-1 = unlimited)
--
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK
--   -1 NOT_LOADED              no state yet: rebuild from the database first (a
--                              bare meta hash would let earlier winners win again)
--   -6 QUANTITY_BELOW_ISSUED   total < wins already accepted; nothing changed

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local total = tonumber(ARGV[3])
if total >= 0 and redis.call('HLEN', KEYS[2]) > total then
  return -6
end
redis.call('HSET', KEYS[1], 'start', ARGV[1], 'end', ARGV[2], 'total', ARGV[3])
return 0
