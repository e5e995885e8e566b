-- Move a project's waiting and retrying items from lower lanes to ARGV[3].
-- ARGV: base, project, lane. Returns the number of items moved.
local project, lane = ARGV[2], ARGV[3]
local prefix = base .. ':q:' .. project .. ':'
local moved = 0
for _, key in ipairs(redis.call('SMEMBERS', STREAMS)) do
  if string.sub(key, 1, #prefix) == prefix then
    local r = split(string.sub(key, #prefix + 1), ':')
    local stage, specialty, from = r[1], r[2], r[3]
    if LANES[from] > LANES[lane] then
      local last = last_delivered(key, stage)
      for _, e in ipairs(redis.call('XRANGE', key, '(' .. last, '+')) do
        local f = fields_of(e[2])
        redis.call('XDEL', key, e[1])
        if f['id'] and redis.call('HGET', WHERE, f['id']) == key .. ' ' .. e[1] then
          redis.call('HSET', ROUTE, f['id'], project .. ' ' .. stage .. ' ' .. specialty .. ' ' .. lane)
          push(f['id'], f['t'])
          moved = moved + 1
        end
      end
    end
  end
end
for _, id in ipairs(redis.call('ZRANGE', RETRY, 0, -1)) do
  local r = split(redis.call('HGET', ROUTE, id) or '')
  if r[1] == project and LANES[r[4]] > LANES[lane] then
    redis.call('HSET', ROUTE, id, r[1] .. ' ' .. r[2] .. ' ' .. r[3] .. ' ' .. lane)
    moved = moved + 1
  end
end
return moved
