-- ack.lua: mark persisted wins done and drop them from the stream.
--
-- XACK alone would leave every win in the stream forever; deleting exactly the
-- acknowledged entries trims it without ever touching one that is not yet
-- persisted (MAXLEN/MINID trimming could).
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2..] entry ids
-- Returns the number of entries acknowledged.

local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
