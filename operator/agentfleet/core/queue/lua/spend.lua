-- What a project's agents spent, added to its UTC day (`over_budget` reads it), and the
-- day's totals. The day's key expires two days after it began.
-- ARGV: base, project, tokens, cost (USD), now_ms. Returns {tokens, cost} of the day
-- (cost as a string: Lua numbers lose nothing, Redis replies would truncate floats).
local project, tokens, cost, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = spend_key(now)
local total_tokens = redis.call('HINCRBY', key, project .. ' tokens', tokens)
local total_cost = redis.call('HINCRBYFLOAT', key, project .. ' cost', cost)
redis.call('PEXPIREAT', key, (math.floor(tonumber(now) / DAY_MS) + 2) * DAY_MS)
return {total_tokens, total_cost}
