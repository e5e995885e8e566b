-- Read-only: every delivered, unfinished item of the namespace and who holds it, for the
-- operator's read API (`agentfleet workers`). ARGV: base, now_ms. Returns a list of
-- {consumer, item id, stream, lease ms or -1, deliveries} over every stream; the
-- pseudo-consumer "released" (handed back, waiting to be claimed again) is left out.
-- A lease is when the claim was last renewed (delivered or heartbeated); an entry read
-- by a worker that never accepted it has no lease, and is dated by Redis' idle time.
local now = tonumber(ARGV[2])
local found = {}
for _, key in ipairs(redis.call('SMEMBERS', STREAMS)) do
  if redis.call('EXISTS', key) == 1 then
    local stage = split(string.sub(key, #base + 4), ':')[2]
    local count = redis.call('XPENDING', key, stage)[1]
    if count > 0 then
      for _, p in ipairs(redis.call('XPENDING', key, stage, '-', '+', count)) do
        if p[2] ~= 'released' then
          local entry = redis.call('XRANGE', key, p[1], p[1])[1]
          local id = ''
          if entry then id = fields_of(entry[2])['id'] or '' end
          local leased = redis.call('ZSCORE', leases(key), p[1])
          local at = now - p[3]
          if leased then at = tonumber(leased) end
          found[#found + 1] = {p[2], id, key, at, p[4]}
        end
      end
    end
  end
end
return found
