-- dead-letter.lua: move one entry that cannot be persisted to the dead-letter
-- stream, with the reason, and take it out of the work stream, atomically, so it
-- blocks nothing behind it and is never lost.
--
-- KEYS[1] stream
-- KEYS[2] dead-letter stream
-- ARGV[1] consumer group
-- ARGV[2] entry id
-- ARGV[3] reason
-- ARGV[4..] the entry's fields (name, value, ...)
-- Returns the dead-letter entry id.

local fields = { 'source-id', ARGV[2], 'reason', ARGV[3] }
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id
