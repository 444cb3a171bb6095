-- configure.lua: replace a loaded coupon's rules (admin create / PATCH).
--
-- KEYS[1] meta   hash  start, end, total
-- KEYS[2] users  hash  userId -> "<rank>:<issuedAt ms>[:<requestId>]"
-- KEYS[3] live   string  (stamp.lua: the guard against a Redis that lost data)
-- ARGV[1] start (epoch ms)
-- ARGV[2] end (epoch ms)
-- ARGV[3] total (-1 = unlimited)
--
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK
--   -1 NOT_LOADED              no state yet: rebuild from the database first (a
--                              bare meta hash would let earlier winners win again)
--   -6 QUANTITY_BELOW_ISSUED   total < wins already accepted; nothing changed
--   -8 BEHIND                  the state may lack wins the database holds (its
--                              count too): catch up first; nothing changed

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
if redis.call('EXISTS', KEYS[3]) == 0
  and redis.call('HGET', KEYS[1], 'run') ~= string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') then
  return -8
end
local total = tonumber(ARGV[3])
if total >= 0 and redis.call('HLEN', KEYS[2]) > total then
  return -6
end
redis.call('HSET', KEYS[1], 'start', ARGV[1], 'end', ARGV[2], 'total', ARGV[3])
return 0
