-- issue.lua: decide and record a batch of issue requests for one coupon, atomically.
--
-- The whole decision (window, then duplicate, then quantity), the record of the
-- win and its enqueueing for persistence happen in this one script, so no other
-- request can interleave: no oversell, no duplicate, and no win that is granted
-- without being queued. The requests of a batch are decided one after another in
-- the order given, exactly as if each were its own call; batching only spares
-- the per-call cost of EVALSHA, which outweighs the work of one request in it.
--
-- A win is stored with the id of the request that won it. A request decided a
-- second time — the same call sent again by the client library after a
-- reconnect, or a client's retry with the same Idempotency-Key — finds its own
-- id and gets its rank again (nothing is recorded twice; checked before the
-- window, since the win was granted inside it), instead of being told
-- ALREADY_ISSUED for its own win.
--
-- KEYS[1] meta    hash  start, end (epoch ms), total (-1 = unlimited)
-- KEYS[2] users   hash  userId -> "<rank>:<issuedAt ms>:<requestId>" (a rebuild
--                       from the database writes the id its row kept, or
--                       "<rank>:<issuedAt ms>" for a row that has none)
-- KEYS[3] holes   zset  free ranks below the highest in use (after a rebuild)
-- KEYS[4] stream  stream of wins waiting to be persisted: u, r, t, k (the
--                 requestId, persisted with the row so a rebuilt gate knows it)
-- KEYS[5] live    string  this server's stamp checked within the last LIVE_MS
--                 (stamp.lua: the guard against a Redis that lost data)
-- KEYS[6] codes   hash  partner codes: number r -> code r, numbered 1..n: while
--                 there are any, at most that many wins; a win is answered with its code
-- KEYS[7] draw    hash  the coupon's opening draw (docs/draw.md): while it has
--                       not run, requests are entries, not wins (enter.lua)
-- ARGV    triples of userId, now, requestId: one per request. now is '' (the
--         service's calls): the window is judged by this Redis's own clock (TIME),
--         one clock for every API process whatever theirs say, and the win is
--         stamped with that same instant (t, and the database's date_issued). An
--         instant in epoch ms instead is taken as the time (tests of the window's
--         edges).
--
-- Returns (codes: src/coupon-state/codes.ts)
--   -1 NOT_LOADED   the coupon's state is not in Redis: rebuild it from the
--                   database and call again
--   -8 BEHIND       the state is not stamped by this Redis server (restarted,
--                   promoted, or marked behind): catch up from the database and
--                   call again
--   -9 DRAW_PENDING the coupon's draw has not run: send the batch to enter.lua
-- or { the clock (epoch ms, TIME), then one outcome per request, in order }: the
-- rank (>= 1) on a win;
-- "<rank>:<issuedAt ms>" (a string) when the user's win is this same request's,
-- decided earlier (either of the two as { it, partner code } when the coupon has
-- codes: code number rank, or false); or a code:
--   -2 ISSUE_NOT_STARTED
--   -3 ISSUE_ENDED
--   -4 ALREADY_ISSUED   another request of this user won
--   -5 SOLD_OUT
-- Codes are never counts: 0 is not an outcome, so "last coupon" and "sold out"
-- cannot be confused.

local meta = redis.call('HMGET', KEYS[1], 'start', 'end', 'total')
if not meta[1] then
  return -1
end
-- The tail loss guard (stamp.lua, which this repeats): after Redis lost data, no
-- answer until the state has caught up with the database.
if redis.call('EXISTS', KEYS[5]) == 0 then
  if redis.call('HGET', KEYS[1], 'run') ~= string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') then
    return -8
  end
  redis.set_repl(redis.REPL_NONE)
  redis.call('SET', KEYS[5], '1', 'PX', 250)
  redis.set_repl(redis.REPL_ALL)
end
local drawing = redis.call('HGET', KEYS[7], 'state')
if drawing and drawing ~= 'drawn' then
  return -9
end
local start, stop, total = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
local codes = redis.call('HLEN', KEYS[6])
if codes > 0 and (total < 0 or codes < total) then
  total = codes
end
local time = redis.call('TIME')
local clock = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local stamp = string.format('%d', clock) -- formatted once: a number written per win costs a sprintf
local won = redis.call('HLEN', KEYS[2])
local holes = redis.call('ZCARD', KEYS[3])
local out = { clock }
local coded, ranks = {}, {} -- the wins of a coupon with codes: where in out, their ranks
for i = 1, #ARGV, 3 do
  local user, at, request = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local now = clock
  if at == '' then
    at = stamp
  else
    now = tonumber(at)
  end
  local held = redis.call('HGET', KEYS[2], user)
  local code
  local won_at, by
  if held then
    won_at, by = string.match(held, '^(%d+:%d+):(.*)$')
  end
  if by == request then
    -- this very request's win (decided inside the window, whenever it is asked again)
    code = won_at
  elseif now < start then
    code = -2
  elseif now >= stop then
    code = -3
  elseif held then
    code = -4
  elseif total >= 0 and won >= total then
    code = -5
  else
    code = won + 1
    if holes > 0 then
      code = tonumber(redis.call('ZPOPMIN', KEYS[3])[1])
      holes = holes - 1
    end
    redis.call('HSET', KEYS[2], user, code .. ':' .. at .. ':' .. request)
    redis.call('XADD', KEYS[4], '*', 'u', user, 'r', code, 't', at, 'k', request)
    won = won + 1
  end
  out[#out + 1] = code
  if codes > 0 and (type(code) == 'string' or code > 0) then
    coded[#coded + 1] = #out
    ranks[#ranks + 1] = string.match(code, '^%d+')
  end
end
if #ranks > 0 then -- the wins' codes, in one call for the batch
  local got = redis.call('HMGET', KEYS[6], unpack(ranks))
  for j = 1, #coded do
    out[coded[j]] = { out[coded[j]], got[j] }
  end
end
return out
