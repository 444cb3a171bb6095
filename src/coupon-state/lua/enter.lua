-- enter.lua: a batch of requests for a coupon whose opening draw has not run:
-- entries, one per user (docs/draw.md).
--
-- KEYS[1] meta     hash  start, end (epoch ms)
-- KEYS[2] draw     hash  at (epoch ms), state: open | closed (being drawn) | drawn
-- KEYS[3] entries  zset  every score 0, member pseudonym .. userId: lexicographic
--                        order is the pseudonyms' order, which the draw needs
-- ARGV    triples of userId, now, member: one per request. now is an instant in
--         epoch ms, or '' to judge by this Redis's own clock (TIME), as issue.lua
--         can
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
local clock = nil
for i = 1, #ARGV, 3 do
  local now = tonumber(ARGV[i + 1])
  if not now then
    if not clock then
      local time = redis.call('TIME')
      clock = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
    end
    now = clock
  end
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
