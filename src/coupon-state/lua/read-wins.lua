-- read-wins.lua: deliver new wins to this consumer, packed as columns.
--
-- The same XREADGROUP the worker would send, but the reply carries one string per
-- column instead of ten per entry: the worker parses a few strings per read, not
-- ten small replies per win. Only entries as issue.lua writes them are packed
-- (fields u, r, t, k in that order; a user id and a request id without a comma;
-- ranks and instants of at most 15 digits, safe integers in JS); any other entry
-- (one written before k was, say) is returned as it is, for the worker to judge
-- on its own.
--
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2] consumer
-- ARGV[3] entries at most
-- Returns { count, ids, users, ranks, instants, requests, others }: the packed entries'
-- columns joined by commas (ids ascending), and the other entries as
-- { id, { field, value, ... } }.

local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[1], '>')
local entries = reply and reply[1][2] or {}
local ids, users, ranks, instants, requests, others = {}, {}, {}, {}, {}, {}
local n = 0
local find = string.find
for i = 1, #entries do
  local entry = entries[i]
  local f = entry[2]
  local u, r, t, k = f[2], f[4], f[6], f[8]
  if #f == 8 and f[1] == 'u' and f[3] == 'r' and f[5] == 't' and f[7] == 'k'
    and u ~= '' and not find(u, ',', 1, true) and k ~= '' and not find(k, ',', 1, true)
    and #r <= 15 and find(r, '^[1-9]%d*$') and #t <= 15 and find(t, '^%d+$') then
    n = n + 1
    ids[n], users[n], ranks[n], instants[n], requests[n] = entry[1], u, r, t, k
  else
    others[#others + 1] = entry
  end
end
return { n, table.concat(ids, ','), table.concat(users, ','), table.concat(ranks, ','),
  table.concat(instants, ','), table.concat(requests, ','), others }
