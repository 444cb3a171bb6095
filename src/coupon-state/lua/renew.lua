-- renew.lua: extend a lease if it is still ours (the draw's lease, renewed while
-- the draw runs; a process that dies stops renewing and the lease expires).
--
-- KEYS[1] lease  string  holding ARGV[1]
-- ARGV[1] token
-- ARGV[2] time to live (ms)
--
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK          renewed
--   -7 LOCK_LOST   no longer ours

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -7
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
