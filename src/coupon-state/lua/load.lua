-- load.lua: install a coupon's state rebuilt from the database (reconciliation).
--
-- The caller holds KEYS[5] (the rebuild lock) and has filled the staging keys
-- KEYS[6] and KEYS[7] in chunks; this script swaps them in all at once, so an
-- issue request sees either no state (NOT_LOADED) or the whole rebuilt state.
--
-- KEYS[1] meta            hash    start, end, total, run (stamp.lua)
-- KEYS[2] users           hash    userId -> "<rank>:<issuedAt ms>[:<requestId>]"
-- KEYS[3] holes           zset    free ranks
-- KEYS[4] stream          stream  wins waiting to be persisted
-- KEYS[5] lock            string  the rebuild lock, holding ARGV[1]
-- KEYS[6] staging users   hash    (may not exist: no winners)
-- KEYS[7] staging holes   zset    (may not exist: no holes)
-- KEYS[8] live            string  (stamp.lua)
-- ARGV[1] lock token
-- ARGV[2] start, ARGV[3] end, ARGV[4] total (-1 = unlimited)
-- ARGV[5] consumer group name
--
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK          installed
--   -7 LOCK_LOST   the lock is no longer ours; nothing changed

if redis.call('GET', KEYS[5]) ~= ARGV[1] then
  return -7
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('RENAME', KEYS[6], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
if redis.call('EXISTS', KEYS[7]) == 1 then
  redis.call('RENAME', KEYS[7], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
redis.call('HSET', KEYS[1], 'start', ARGV[2], 'end', ARGV[3], 'total', ARGV[4])
-- Stamped as this server's (stamp.lua): it now holds what the database holds.
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
redis.call('HSET', KEYS[1], 'run', run)
redis.set_repl(redis.REPL_NONE)
redis.call('SET', KEYS[8], '1', 'PX', 250)
redis.set_repl(redis.REPL_ALL)
-- The stream and its consumer group; BUSYGROUP (already there) is fine.
redis.pcall('XGROUP', 'CREATE', KEYS[4], ARGV[5], '0', 'MKSTREAM')
redis.call('DEL', KEYS[5])
return 0
