-- verify.lua: are these wins exactly the gate's? (user known, same rank)
--
-- The worker calls it while it holds the coupon's row lock (see the worker), so a
-- gate rebuilt after a loss cannot change between this answer and the commit.
-- Users and ranks come packed, as read-wins.lua returns them; the reply is one
-- number, so the worker parses no reply per win.
--
-- KEYS[1] meta   hash  (absent: the gate state is not loaded)
-- KEYS[2] users  hash  userId -> "<rank>:<issuedAt ms>[:<requestId>]"
-- ARGV[1] user ids joined by commas
-- ARGV[2] their ranks, joined by commas, in the same order
-- Returns (codes: src/coupon-state/codes.ts)
--   -1 NOT_LOADED   the gate state is not in Redis
-- or how many wins do not match (0: all of them are the gate's).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local users, ranks = {}, {}
for u in string.gmatch(ARGV[1], '[^,]+') do
  users[#users + 1] = u
end
for r in string.gmatch(ARGV[2], '[^,]+') do
  ranks[#ranks + 1] = r
end
if #users ~= #ranks then
  return redis.error_reply('verify.lua: ' .. #users .. ' users but ' .. #ranks .. ' ranks')
end
local SLICE = 1000 -- unpack() takes a few thousand values at most
local COLON = string.byte(':')
local mismatches = 0
for from = 1, #users, SLICE do
  local to = math.min(from + SLICE - 1, #users)
  local values = redis.call('HMGET', KEYS[2], unpack(users, from, to))
  for i = 1, #values do
    local v = values[i]
    local rank = ranks[from + i - 1]
    -- v is "<rank>:<issuedAt>[:<requestId>]": the rank matches when v starts with rank, then ':'
    -- (compared in place: no string made per win)
    if not v or string.byte(v, #rank + 1) ~= COLON or string.find(v, rank, 1, true) ~= 1 then
      mismatches = mismatches + 1
    end
  end
end
return mismatches
