-- add-codes.lua: take partner codes committed to the database into a loaded
-- coupon's state, in number order. How many it holds is the limit issue.lua
-- applies, so the codes and the limit they allow arrive in the same step.
--
-- Uploads from several nodes may arrive out of order: the codes are numbered, and
-- only those that continue the list are taken. Codes already there are skipped;
-- a gap (an earlier upload not taken yet) takes nothing, and the caller fills it
-- from the database first.
--
-- KEYS[1] meta    hash  (absent: the state is not loaded)
-- KEYS[2] codes   hash  partner codes: number r -> code r, numbered 1..n
-- ARGV[1] the number of the first code given
-- ARGV[2..] the codes, in number order (none: only the count is asked)
--
-- Returns (codes: src/coupon-state/codes.ts)
--   -1 NOT_LOADED   no state: a load reads every code from the database
-- or how many codes the coupon holds after the call.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local held = redis.call('HLEN', KEYS[2])
local first = tonumber(ARGV[1])
if held < first - 1 then
  return held
end
-- ARGV[i] is code number first + i - 2; those from number held + 1 on are new
local SLICE = 1000 -- unpack() takes a few thousand values at most
local fields = {}
for i = held - first + 3, #ARGV do
  fields[#fields + 1] = first + i - 2
  fields[#fields + 1] = ARGV[i]
  if #fields >= 2 * SLICE then
    redis.call('HSET', KEYS[2], unpack(fields))
    fields = {}
  end
end
if #fields > 0 then
  redis.call('HSET', KEYS[2], unpack(fields))
end
return redis.call('HLEN', KEYS[2])
