-- Move a project's waiting and retrying items from lower lanes to ARGV[3].
-- ARGV: base, project, lane. Returns the number of items moved.
local project, lane = ARGV[2], ARGV[3]
local prefix = base .. ':q:' .. project .. ':'
local moved = 0
local sources = {}
for _, key in ipairs(redis.call('SMEMBERS', STREAMS)) do
  if string.sub(key, 1, #prefix) == prefix then
    local r = split(string.sub(key, #prefix + 1), ':')
    if LANES[r[3]] > LANES[lane] then sources[#sources + 1] = {key, r[1], r[2], r[3]} end
  end
end
-- Higher lanes move first, so boosted items keep their relative priority.
table.sort(sources, function(a, b) return LANES[a[4]] < LANES[b[4]] end)
for _, source in ipairs(sources) do
  local key, stage, specialty = source[1], source[2], source[3]
  for _, e in ipairs(redis.call('XRANGE', key, '(' .. last_delivered(key, stage), '+')) do
    local f = fields_of(e[2])
    redis.call('XDEL', key, e[1])
    if f['id'] and redis.call('HGET', WHERE, f['id']) == key .. ' ' .. e[1] then
      redis.call('HSET', ROUTE, f['id'], project .. ' ' .. stage .. ' ' .. specialty .. ' ' .. lane)
      push(f['id'], f['t'])
      moved = moved + 1
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
