-- peek.lua: read a coupon's win count and, optionally, one user's win.
--
-- KEYS[1] meta   hash
-- KEYS[2] users  hash  userId -> "<rank>:<issuedAt ms>[:<requestId>]"
-- ARGV[1] userId, or '' for none
--
-- Returns (codes: src/coupon-state/codes.ts)
--   -1 NOT_LOADED   the coupon's state is not in Redis
-- or { wins accepted, the user's "<rank>:<issuedAt>[:<requestId>]" or false }.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local value = false
if ARGV[1] ~= '' then
  value = redis.call('HGET', KEYS[2], ARGV[1])
end
return { redis.call('HLEN', KEYS[2]), value }
