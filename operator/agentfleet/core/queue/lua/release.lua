-- Give a claimed item back at once (drain). It stays at its place in the lane, owned by
-- the pseudo-consumer "released" with a lease that is always stale, so the next claim
-- takes it over; the interrupted delivery does not count as an attempt.
-- ARGV: base, id, stream, entry, consumer, stage. 1 if released, 0 if not ours.
local id, key, entry, consumer, stage = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if not owns(id, key, entry, consumer, stage) then return 0 end
hand_back(key, stage, entry)
announce(split(redis.call('HGET', ROUTE, id)))
if tonumber(redis.call('HGET', ATTEMPTS, id)) > 0 then redis.call('HINCRBY', ATTEMPTS, id, -1) end
return 1
