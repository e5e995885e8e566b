-- Entries a waiting worker received from its blocking XREADGROUP (one per stream that
-- got data while it waited), best lane first. The first deliverable one is the claim; the
-- others are handed back for the next claim, as is anything of a project put on hold,
-- or that spent its daily budget, while the worker waited.
-- ARGV: base, stage, now_ms, then (stream, entry id) pairs. Returns as claim.lua does.
local stage, now = ARGV[2], ARGV[3]
local claimed = nil
for i = 4, #ARGV, 2 do
  local key, entry_id = ARGV[i], ARGV[i + 1]
  local project = split(string.sub(key, #base + 4), ':')[1]
  local entry = redis.call('XRANGE', key, entry_id, entry_id)[1]
  if not entry then
    redis.call('XACK', key, stage, entry_id)  -- completed or moved meanwhile
    unlease(key, entry_id)
  elseif claimed or redis.call('SISMEMBER', HELD, project) == 1
      or over_budget(project, now) then
    hand_back(key, stage, entry_id)
  else
    claimed = deliver(key, stage, entry, 0, now)
  end
end
return claimed
