-- forget-consumer.lua: drop a consumer of the persist group that holds nothing.
--
-- A worker that died leaves its consumer in every stream it read; once others
-- have taken over its pending entries, the consumer only lengthens the list each
-- worker checks for dead ones. Deleting a consumer deletes its pending entries
-- with it, so the check that it holds none and the deletion are one step: an
-- entry it reads in between (it was alive after all) is never lost. A live
-- worker's consumer, if forgotten, comes back with its next read.
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2] consumer
-- Returns 1 if the consumer is gone (dropped, or it was not there), 0 if it holds
-- entries.

local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #held > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
