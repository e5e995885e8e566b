-- Register a join (a master issue's fan-out) and enqueue its first children in one atomic
-- step; the last child to finish enqueues the summary item (see join_advance). Registering
-- the same join again changes nothing (a redelivered master item).
-- ARGV: base, now_ms, join id, window, timeout_ms, project, parent issue, its sub-issues
-- ("n n ..."), the summary item (id, route, json, attempts), then (id, route, json,
-- attempts) per child. Returns {1, released ids...}, or {0} if the join existed.
local now, jid, window, timeout = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
record_family(ARGV[6], ARGV[7], ARGV[8])
local key = join_key(jid)
if redis.call('EXISTS', key) == 1 then return {0} end
redis.call('HSET', key, 'window', window, 'timeout_ms', timeout, 'open', 0, 'running', 0,
           'created', now, 'summary', cjson.encode({ARGV[9], ARGV[10], ARGV[11], ARGV[12]}))
for i = 13, #ARGV, 4 do
  local id = ARGV[i]
  local done = redis.call('HGET', DONE, id)
  if done then
    -- Finished before this fan-out (an earlier attempt's record): counted as it ended.
    local record = cjson.decode(done)
    redis.call('HSET', key .. ':children', id, cjson.encode({
      state = record['outcome'], error = nil_if_null(record['error']),
      attempts = nil_if_null(record['attempts']), finished = tonumber(now)}))
  else
    redis.call('HSET', key .. ':children', id, cjson.encode({state = 'held'}))
    redis.call('HINCRBY', key, 'open', 1)
    redis.call('SADD', joins_of(id), jid)
    redis.call('RPUSH', key .. ':held', cjson.encode({id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]}))
  end
end
local result = {1}
for _, id in ipairs(join_advance(jid, now)) do result[#result + 1] = id end
return result
