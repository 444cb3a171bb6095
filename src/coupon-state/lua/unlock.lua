-- unlock.lua: release a lock only if it still holds our token.
--
-- KEYS[1] lock
-- ARGV[1] token
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK          released
--   -7 LOCK_LOST   the lock was not ours (expired or taken over)

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 0
end
return -7
