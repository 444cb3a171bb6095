-- read-wins.lua: deliver a transaction's worth of new wins to this consumer,
-- packed as columns.
--
-- The same XREADGROUP reads the worker would send (COUNT ARGV[3], repeated while
-- they come back full, up to ARGV[4] entries), but the reply carries one string per
-- column instead of eight per entry: parsing tens of thousands of small replies
-- was most of a worker's CPU. Only entries exactly as issue.lua writes them are
-- packed (fields u, r, t in that order; a user id of the userId alphabet, which
-- has no comma; ranks and instants of at most 15 digits, safe integers in JS);
-- anything else is returned as it is, for the worker to judge one by one.
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2] consumer
-- ARGV[3] entries per XREADGROUP
-- ARGV[4] entries at most, in all
-- Returns { count, ids, users, ranks, instants, others }: the packed entries'
-- columns joined by commas (ids ascending), and the other entries as
-- { id, { field, value, ... } }.

local per_read = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local ids, users, ranks, instants, others = {}, {}, {}, {}, {}
local n, total = 0, 0
local find = string.find
repeat
  local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', per_read,
    'STREAMS', KEYS[1], '>')
  local entries = reply and reply[1][2] or {}
  for i = 1, #entries do
    local entry = entries[i]
    local f = entry[2]
    local u, r, t = f[2], f[4], f[6]
    if #f == 6 and f[1] == 'u' and f[3] == 'r' and f[5] == 't'
      and find(u, '^[%w_.:@%-]+$') and #r <= 15 and find(r, '^[1-9]%d*$')
      and #t <= 15 and find(t, '^%d+$') then
      n = n + 1
      ids[n], users[n], ranks[n], instants[n] = entry[1], u, r, t
    else
      others[#others + 1] = entry
    end
  end
  total = total + #entries
until #entries < per_read or total >= limit
return { n, table.concat(ids, ','), table.concat(users, ','), table.concat(ranks, ','),
  table.concat(instants, ','), others }
