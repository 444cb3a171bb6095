-- ack.lua: mark persisted wins done and drop them from the stream.
--
-- XACK alone would leave every win in the stream forever. XDEL of each entry costs
-- a scan of its stream node, per entry, so the stream is trimmed instead: every
-- entry below both the group's oldest pending entry and the last of these ids has
-- been delivered and acknowledged, that is persisted or dead-lettered (the persist
-- group is the stream's only reader), and whole nodes of those go at once (XTRIM
-- MINID ~). Of these ids, those left in the one
-- node that straddles the cut are deleted exactly. An entry not yet persisted is
-- never touched.
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2] entry ids, joined by commas, ascending
-- Returns the number of entries acknowledged.

local ids = {}
for id in string.gmatch(ARGV[2], '[^,]+') do
  ids[#ids + 1] = id
end
if #ids == 0 then
  return 0
end
local SLICE = 1000 -- unpack() takes a few thousand values at most
local acked = 0
for from = 1, #ids, SLICE do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, from, math.min(from + SLICE - 1, #ids)))
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function below(a, b) -- stream id a < stream id b
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local cut = ids[#ids]
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[2] and below(pending[2], cut) then
  cut = pending[2]
end
redis.call('XTRIM', KEYS[1], 'MINID', '~', cut, 'LIMIT', 0)

local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
if first then
  local left = {}
  for i = #ids, 1, -1 do
    if below(ids[i], first[1]) then
      break
    end
    left[#left + 1] = ids[i]
  end
  for from = 1, #left, SLICE do
    redis.call('XDEL', KEYS[1], unpack(left, from, math.min(from + SLICE - 1, #left)))
  end
end
return acked
