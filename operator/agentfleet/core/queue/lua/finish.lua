-- Completion (success or dead-letter), recorded exactly once per id, with its follow-ups
-- enqueued in the same script so a crash can never leave one without the other. A child of
-- a join (a master issue's sub-task) is counted there in the same step: the next held
-- child is released, and the last one enqueues the summary.
-- ARGV: base, id, stream, entry, consumer, stage, project, outcome, record_json,
-- require_owner, now_ms, log_maxlen, parked_json, dead_json (a dead letter as it last ran,
-- with its error and attempts; '' for the stored item), enqueued_ms and started_ms (when the
-- item was queued and when its work entered the pipeline; '' when unknown), then (id, route,
-- json, attempts) per follow-up. Returns {1, new follow-up ids...}, {0} if already completed, {-1} if the
-- claim is not ours (only checked when require_owner is "1").
local id, key, entry, consumer, stage = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local project, outcome, record = ARGV[7], ARGV[8], ARGV[9]
if redis.call('HEXISTS', DONE, id) == 1 then return {0} end
if ARGV[10] == '1' and not owns(id, key, entry, consumer, stage) then return {-1} end
redis.call('HSET', DONE, id, record)
join_on_finish(id, outcome, record, ARGV[11])
redis.call('HINCRBY', COUNTS, project .. ' ' .. stage .. ' completed ' .. outcome, 1)
redis.call('XADD', LOG, 'MAXLEN', '~', ARGV[12], '*', 'id', id, 'project', project,
           'stage', stage, 'outcome', outcome, 'worker', consumer,
           'attempts', redis.call('HGET', ATTEMPTS, id) or '0', 'at', ARGV[11],
           'enqueued', ARGV[15], 'started', ARGV[16])
if outcome == 'dead_lettered' then
  -- Kept for `agentfleet retry` (requeue.lua): the item as it last ran.
  local json = ARGV[14]
  if json == '' then json = redis.call('HGET', ITEMS, id) end
  if json then redis.call('HSET', DEAD_PREFIX .. project, id, json) end
end
unplace(id, stage)
forget(id)
if ARGV[13] ~= '' then redis.call('HSET', PARKED, id, ARGV[13]) end
local result = {1}
for i = 17, #ARGV, 4 do
  if enqueue_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[11]) then
    result[#result + 1] = ARGV[i]
  end
end
return result
