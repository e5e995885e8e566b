-- Everything the stats and the metrics need about one namespace, read in one step.
-- ARGV: base, stale_ms, now_ms. Returns {streams, retry_routes, counts, held, declared}
-- where each stream is {key, length, pending, lag or -1, stale, oldest waiting t or -1,
-- oldest stale t or -1} and declared is the flat HGETALL of the lanes the operator
-- declared per project. Stale: pending with a lease older than stale_ms (see claim.lua).
local now = ARGV[3]
local stale_before = tonumber(now) - tonumber(ARGV[2])
local streams = {}
for _, key in ipairs(redis.call('SMEMBERS', STREAMS)) do
  if redis.call('EXISTS', key) == 1 then
    local stage = split(string.sub(key, #base + 4), ':')[2]
    local last, pending, lag = last_delivered(key, stage)
    local stale = redis.call('ZRANGEBYSCORE', leases(key), '-inf', stale_before)
    for _, orphan in ipairs(unleased(key, stage, now)) do
      if orphan[2] <= stale_before then stale[#stale + 1] = orphan[1] end
    end
    local first = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1)
    local oldest = -1
    if first[1] then oldest = tonumber(fields_of(first[1][2])['t']) end
    local oldest_stale = -1
    local first_stale = lowest_id(stale)
    if first_stale then
      local entry = redis.call('XRANGE', key, first_stale, first_stale)[1]
      if entry then oldest_stale = tonumber(fields_of(entry[2])['t']) end
    end
    streams[#streams + 1] = {key, redis.call('XLEN', key), pending, lag or -1, #stale,
                             oldest, oldest_stale}
  end
end
local retrying = {}
for _, id in ipairs(redis.call('ZRANGE', RETRY, 0, -1)) do
  local route = redis.call('HGET', ROUTE, id)
  if route then retrying[#retrying + 1] = route end
end
return {streams, retrying, redis.call('HGETALL', COUNTS), redis.call('SMEMBERS', HELD),
        redis.call('HGETALL', DECLARED)}
