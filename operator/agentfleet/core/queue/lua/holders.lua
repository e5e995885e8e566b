-- Which workers hold items right now: the consumers with pending (delivered, unfinished)
-- entries, over every stream of the namespace, except the pseudo-consumer "released".
-- ARGV: base. Returns the flat list {consumer, count, consumer, count, ...}.
local counts = {}
for _, key in ipairs(redis.call('SMEMBERS', STREAMS)) do
  if redis.call('EXISTS', key) == 1 then
    local stage = split(string.sub(key, #base + 4), ':')[2]
    local summary = redis.call('XPENDING', key, stage)
    for _, holder in ipairs(summary[4] or {}) do
      if holder[1] ~= 'released' then
        counts[holder[1]] = (counts[holder[1]] or 0) + tonumber(holder[2])
      end
    end
  end
end
local flat = {}
for consumer, count in pairs(counts) do
  flat[#flat + 1] = consumer
  flat[#flat + 1] = count
end
return flat
