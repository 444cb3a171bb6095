-- issue.lua: decide and record one issue request, atomically.
--
-- The whole decision (window, then duplicate, then quantity), the record of the
-- win and its enqueueing for persistence happen in this one script, so no other
-- request can interleave: no oversell, no duplicate, and no win that is granted
-- without being queued.
--
-- KEYS[1] meta    hash  start, end (epoch ms), total (-1 = unlimited)
-- KEYS[2] users   hash  userId -> "<rank>:<issuedAt ms>"
-- KEYS[3] holes   zset  free ranks below the highest in use (after a rebuild)
-- KEYS[4] stream  stream of wins waiting to be persisted: u, r, t
-- ARGV[1] userId
-- ARGV[2] now (epoch ms, from the API node)
--
-- Returns the rank (>= 1) on a win, or a negative outcome code:
--   -1 NOT_LOADED   the coupon's state is not in Redis: rebuild it from the database
--   -2 ISSUE_NOT_STARTED
--   -3 ISSUE_ENDED
--   -4 ALREADY_ISSUED
--   -5 SOLD_OUT
-- Codes are never counts: 0 is not an outcome, so "last coupon" and "sold out"
-- cannot be confused.

local meta = redis.call('HMGET', KEYS[1], 'start', 'end', 'total')
if not meta[1] then
  return -1
end
local now = tonumber(ARGV[2])
if now < tonumber(meta[1]) then
  return -2
end
if now >= tonumber(meta[2]) then
  return -3
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return -4
end
local won = redis.call('HLEN', KEYS[2])
local total = tonumber(meta[3])
if total >= 0 and won >= total then
  return -5
end
local rank = won + 1
local hole = redis.call('ZPOPMIN', KEYS[3])
if hole[1] then
  rank = tonumber(hole[1])
end
redis.call('HSET', KEYS[2], ARGV[1], rank .. ':' .. ARGV[2])
redis.call('XADD', KEYS[4], '*', 'u', ARGV[1], 'r', rank, 't', ARGV[2])
return rank
