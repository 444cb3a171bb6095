-- add-codes.lua: take partner codes committed to the database into a loaded
-- coupon's state, in number order. The list's length is the limit issue.lua
-- applies, so the codes and the limit they allow arrive in the same step.
--
-- Uploads from several nodes may arrive out of order: the codes are numbered, and
-- only those that continue the list are taken. Codes already there are skipped;
-- a gap (an earlier upload not taken yet) takes nothing, and the caller fills it
-- from the database first.
--
-- KEYS[1] meta    hash  (absent: the state is not loaded)
-- KEYS[2] codes   list  partner codes 1..n
-- ARGV[1] the number of the first code given
-- ARGV[2..] the codes, in number order (none: only the count is asked)
--
-- Returns (codes: src/coupon-state/codes.ts)
--   -1 NOT_LOADED   no state: a load reads every code from the database
-- or how many codes the list holds after the call.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local held = redis.call('LLEN', KEYS[2])
local first = tonumber(ARGV[1])
if held < first - 1 then
  return held
end
local from = held - first + 3 -- the ARGV index of code number held + 1
local SLICE = 1000 -- unpack() takes a few thousand values at most
for i = from, #ARGV, SLICE do
  held = redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + SLICE - 1, #ARGV)))
end
return held
