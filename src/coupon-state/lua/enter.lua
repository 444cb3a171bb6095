-- enter.lua: a batch of requests for a coupon whose opening draw has not run:
-- entries, one per user (docs/draw.md).
--
-- KEYS[1] meta     hash  start, end (epoch ms)
-- KEYS[2] draw     hash  at (epoch ms), state: open | closed (being drawn) | drawn
-- KEYS[3] entries  zset  every score 0, member pseudonym .. userId: lexicographic
--                        order is the pseudonyms' order, which the draw needs
-- ARGV    triples of userId, now (epoch ms), member: one per request
--
-- Returns (codes: src/coupon-state/codes.ts)
--   -1 NOT_LOADED  the coupon's state is not in Redis
--  -10 NO_DRAW     no draw, or the draw has run: send the batch to issue.lua
-- or { at (drawAt, epoch ms), then one outcome per request, in order }:
--    0 OK (entered; also a repeat: one entry per user)
--   -2 ISSUE_NOT_STARTED
--   -3 ISSUE_ENDED
--  -11 DRAWING     drawAt has passed; the draw is being run

local meta = redis.call('HMGET', KEYS[1], 'start', 'end')
if not meta[1] then
  return -1
end
local draw = redis.call('HMGET', KEYS[2], 'at', 'state')
if not draw[2] or draw[2] == 'drawn' then
  return -10
end
local start, stop, at = tonumber(meta[1]), tonumber(meta[2]), tonumber(draw[1])
local open = draw[2] == 'open'
local out = { at }
for i = 1, #ARGV, 3 do
  local now = tonumber(ARGV[i + 1])
  local code
  if now < start then
    code = -2
  elseif now >= stop then
    code = -3
  elseif not open or now >= at then
    code = -11
  else
    redis.call('ZADD', KEYS[3], 'NX', 0, ARGV[i + 2])
    code = 0
  end
  out[#out + 1] = code
end
return out
