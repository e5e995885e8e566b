-- Retry dead letters: put dead-lettered items of a project back in the queue, each as a
-- new item with its attempts reset. Only ids still recorded as dead letters of the
-- project are taken (two retries at once requeue each item once); the completion record
-- is removed so the id can be enqueued again, and the dead-letter count goes down by one.
-- The review item the dead letter produced stays where it is.
-- ARGV: base, now_ms, project, then (id, route, json, attempts) per item. Returns the ids
-- requeued.
local now, project = ARGV[2], ARGV[3]
local dead = DEAD_PREFIX .. project
local requeued = {}
for i = 4, #ARGV, 4 do
  local id, route = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', dead, id) == 1 and redis.call('HEXISTS', ITEMS, id) == 0 then
    redis.call('HDEL', dead, id)
    redis.call('HDEL', DONE, id)
    local r = split(route)
    local counted = r[1] .. ' ' .. r[2] .. ' completed dead_lettered'
    if tonumber(redis.call('HGET', COUNTS, counted) or '0') > 0 then
      redis.call('HINCRBY', COUNTS, counted, -1)
    end
    if enqueue_one(id, route, ARGV[i + 2], ARGV[i + 3], now) then
      requeued[#requeued + 1] = id
    end
  end
end
return requeued
