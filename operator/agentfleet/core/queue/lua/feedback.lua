-- A pull request's feedback (review comments, mentions, failing checks), kept for the
-- rounds that address it. ARGV: base, op, project, pull, then per op:
--   add    key, entry JSON  -> 1 if the entry is new (keyed, so a redelivery adds nothing)
--   read                    -> {cursor, rounds, entry JSON after the cursor...}
--   finish end              -> rounds after this one; the cursor moves to `end` (entries
--                              up to it were addressed), never backwards
local op, project, pull = ARGV[2], ARGV[3], ARGV[4]
local field = project .. ' ' .. pull
local list = base .. ':feedback:' .. field
local keys = base .. ':feedback-keys:' .. field
local CURSORS = base .. ':feedback-cursor'
local ROUNDS = base .. ':feedback-rounds'
if op == 'add' then
  if redis.call('SADD', keys, ARGV[5]) == 0 then return 0 end
  redis.call('RPUSH', list, ARGV[6])
  return 1
end
local cursor = tonumber(redis.call('HGET', CURSORS, field) or '0')
if op == 'read' then
  local result = {tostring(cursor), redis.call('HGET', ROUNDS, field) or '0'}
  for _, entry in ipairs(redis.call('LRANGE', list, cursor, -1)) do
    result[#result + 1] = entry
  end
  return result
end
if op == 'finish' then
  local finished = tonumber(ARGV[5])
  if finished > cursor then redis.call('HSET', CURSORS, field, finished) end
  return redis.call('HINCRBY', ROUNDS, field, 1)
end
return redis.error_reply('unknown feedback op ' .. op)
