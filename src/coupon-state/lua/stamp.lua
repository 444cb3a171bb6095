-- stamp.lua: the gate's stamp of the Redis server that holds it (tail loss guard).
--
-- A coupon's meta carries `run`, the run_id of the Redis server process on which
-- its state was last known to hold everything the database holds (loaded or
-- caught up from it, or created empty). A server restarted from a shorter AOF or
-- an older RDB, or a replica promoted in its place, is a new process with a new
-- run_id: the stamp no longer matches, and issue.lua answers BEHIND until the
-- state has caught up with the database (docs/architecture.md, "When Redis
-- forgets"). The check itself is INFO, a few microseconds: issue.lua makes it at
-- most once per LIVE_MS per coupon, and in between trusts the `live` key, which
-- is written with replication off (never in the AOF, never sent to a replica)
-- and expires, so a restored or promoted copy never carries a fresh one.
--
-- KEYS[1] meta   hash
-- KEYS[2] live   string  (volatile: see above)
-- ARGV[1] 'set': stamp the state as this server's, if it exists;
--         'check': whether it is stamped as this server's;
--         'clear': mark it behind (the database holds what it forgot)
-- Returns 1 (stamped / yes) or 0 (no state / no / cleared).

local LIVE_MS = 250
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
if ARGV[1] == 'clear' then
  redis.call('HDEL', KEYS[1], 'run')
  redis.call('DEL', KEYS[2])
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] == 'set' then
  redis.call('HSET', KEYS[1], 'run', run)
elseif redis.call('HGET', KEYS[1], 'run') ~= run then
  return 0
end
redis.set_repl(redis.REPL_NONE)
redis.call('SET', KEYS[2], '1', 'PX', LIVE_MS)
redis.set_repl(redis.REPL_ALL)
return 1
