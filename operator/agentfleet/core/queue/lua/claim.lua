-- ARGV: base, stage, consumer, now_ms, stale_ms, rotation, n_order, n_order x
-- "specialty lane", then the projects (none: every project of the namespace).
-- Returns {stream, entry, id, json, route, attempts, t, reclaimed} or nil.
local stage, consumer, now, stale_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local rotation = tonumber(ARGV[6])
local n_order = tonumber(ARGV[7])

-- Sub-tasks past their deadline are timed out in their join (any stage: whoever looks
-- first), which releases held ones or enqueues the summary.
join_expire(now)

-- Retries whose backoff is over rejoin their lane (any stage: whoever looks first).
for _, id in ipairs(redis.call('ZRANGEBYSCORE', RETRY, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', RETRY, id)
  if redis.call('HEXISTS', ROUTE, id) == 1 then push(id, now) end
end

local projects = {}
for i = 8 + n_order, #ARGV do projects[#projects + 1] = ARGV[i] end
if #projects == 0 then
  projects = redis.call('SMEMBERS', PROJECTS)
  table.sort(projects)
end
local open = {}
for _, project in ipairs(projects) do
  if redis.call('SISMEMBER', HELD, project) == 0 and not over_budget(project, now) then
    open[#open + 1] = project
  end
end

-- A claim is stale once its lease is at least stale_ms old (or handed back).
local stale_before = tonumber(now) - tonumber(stale_ms)

local function take(key)
  for _, orphan in ipairs(unleased(key, stage, now)) do lease(key, orphan[1], orphan[2]) end
  for _ = 1, 10 do
    local entry, reclaimed = nil, 0
    -- The oldest stale entry (of the first 100 by lease time) is taken over first.
    local stale = lowest_id(redis.call('ZRANGEBYSCORE', leases(key), '-inf', stale_before,
                                       'LIMIT', 0, 100))
    if stale then
      local claimed = redis.call('XCLAIM', key, stage, consumer, 0, stale)
      if claimed[1] then entry, reclaimed = claimed[1], 1 else unlease(key, stale) end
    end
    if not entry then
      local read = redis.call('XREADGROUP', 'GROUP', stage, consumer, 'COUNT', 1,
                              'STREAMS', key, '>')
      if not read then return nil end
      entry = read[1][2][1]
    end
    local delivered = deliver(key, stage, entry, reclaimed, now)
    if delivered then return delivered end
  end
  return nil
end

local n = #open
for i = 1, n_order do
  local pair = split(ARGV[7 + i])
  for j = 0, n - 1 do
    local key = stream_key(open[(j + rotation) % n + 1], stage, pair[1], pair[2])
    if redis.call('EXISTS', key) == 1 then
      local got = take(key)
      if got then return got end
    end
  end
end
return nil
