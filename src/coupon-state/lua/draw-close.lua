-- draw-close.lua: the draw begins: no more entries. From here until the winners
-- are entered (draw-enter.lua) every request is answered DRAWING.
--
-- KEYS[1] draw  hash  at, state
--
-- Returns (codes: src/coupon-state/codes.ts)
--    0 OK        closed now, or already closed or drawn
--  -10 NO_DRAW   the coupon has no draw

local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -10
end
if state == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'closed')
end
return 0
