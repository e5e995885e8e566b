-- Everything the stats and the metrics need about one namespace, read in one step.
-- ARGV: base, stale_ms. Returns {streams, retry_routes, counts, held, declared} where each
-- stream is {key, length, pending, lag or -1, stale, oldest waiting t or -1, oldest stale ms
-- or -1} and declared is the flat HGETALL of the lanes the operator declared per project.
local stale_ms = ARGV[2]
local streams = {}
for _, key in ipairs(redis.call('SMEMBERS', STREAMS)) do
  if redis.call('EXISTS', key) == 1 then
    local stage = split(string.sub(key, #base + 4), ':')[2]
    local last, pending, lag = last_delivered(key, stage)
    local stale = redis.call('XPENDING', key, stage, 'IDLE', stale_ms, '-', '+', 100000)
    local first = redis.call('XRANGE', key, '(' .. last, '+', 'COUNT', 1)
    local oldest = -1
    if first[1] then oldest = tonumber(fields_of(first[1][2])['t']) end
    local oldest_stale = -1
    if stale[1] then oldest_stale = tonumber(split(stale[1][1], '-')[1]) end
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
