-- ARGV: base, id, stream, entry, consumer, stage, due_ms, json. 1 if scheduled, 0 if the
-- claim is no longer ours.
local id, key, entry, consumer, stage = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if not owns(id, key, entry, consumer, stage) then return 0 end
unplace(id, stage)
redis.call('HSET', ITEMS, id, ARGV[8])
redis.call('HSET', WHERE, id, 'retry')
redis.call('ZADD', RETRY, ARGV[7], id)
return 1
