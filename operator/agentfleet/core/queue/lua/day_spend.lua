-- A project's daily limits and what it spent on the UTC day of `now`.
-- ARGV: base, project, now_ms. Returns {limits or false, tokens, cost}.
local project, now = ARGV[2], ARGV[3]
local key = spend_key(now)
return {redis.call('HGET', BUDGETS, project) or false,
        redis.call('HGET', key, project .. ' tokens') or '0',
        redis.call('HGET', key, project .. ' cost') or '0'}
