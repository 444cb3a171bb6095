-- draw-configure.lua: set or clear a coupon's opening draw (create / PATCH).
-- A draw that has run is never changed.
--
-- KEYS[1] draw     hash  at, state
-- KEYS[2] entries  zset
-- ARGV[1] at (epoch ms), or '' for no draw
--
-- Returns 0 OK

local state = redis.call('HGET', KEYS[1], 'state')
if state == 'drawn' then
  return 0
end
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
redis.call('HSET', KEYS[1], 'at', ARGV[1])
if not state then
  redis.call('HSET', KEYS[1], 'state', 'open')
end
return 0
