-- Shared by every queue script (prepended to each). ARGV[1] is the namespace's key base,
-- e.g. "agentfleet:{team-a}": the hash tag keeps a namespace's keys in one cluster slot,
-- which is why scripts may derive the keys they touch from it.
--
-- Time: every script that needs the time takes it as an argument (`now_ms`, from the
-- client's clock, `WorkQueue(clock=...)`); none calls TIME, so a test's fake clock
-- governs leases, retries and ages. A pending entry's idle time (Redis' clock) is read
-- only to date an entry never accepted (`unleased`) relative to `now`. Stream entry ids
-- are Redis' and only order entries.
local base = ARGV[1]
local ITEMS = base .. ':items'        -- id -> item JSON (opaque here)
local ROUTE = base .. ':route'        -- id -> "project stage specialty lane"
local ATTEMPTS = base .. ':attempts'  -- id -> deliveries so far
local WHERE = base .. ':where'        -- id -> "<stream> <entry id>" or "retry"
local DONE = base .. ':done'          -- id -> completion record JSON (exactly once)
local RETRY = base .. ':retry'        -- zset id -> due time (ms)
local PROJECTS = base .. ':projects'
local HELD = base .. ':held'
local STREAMS = base .. ':streams'
local COUNTS = base .. ':counts'      -- "project stage completed <outcome>" and
                                      -- "project stage enqueued <specialty>" -> n
local LOG = base .. ':log'            -- stream of completion events
local PARKED = base .. ':parked'      -- review items that failed for good
local DEAD_PREFIX = base .. ':dead:'  -- per project: dead-lettered id -> its item JSON
local DECLARED = base .. ':declared'  -- project -> "stage specialty,..." its lanes (metrics)
local ARRIVALS = base .. ':arrivals'  -- pub/sub: "project stage specialty" per deliverable item
local DEADLINES = base .. ':deadlines' -- zset "<join id> <child id>" -> when it times out (ms)
local PARENTS = base .. ':parents'    -- "project issue" -> the issue it was fanned out from
local FAMILIES = base .. ':families'  -- "project issue" -> its sub-issues, "n n ..."
local BUDGETS = base .. ':budgets'    -- project -> "<tokens per day> <cost per day>" ("-": none)
local SPEND_PREFIX = base .. ':spend:' -- per UTC day (days since the epoch): "<project>
                                       -- tokens" and "<project> cost" -> spent that day
local DAY_MS = 86400000
local LANES = {urgent = 1, high = 2, normal = 3, low = 4}
-- Per child, `<base>:joinof:<child id>`: the set of joins it is open in (usually one; a
-- retry comment during a run registers the running ones in its own join too).
-- Per join (fan-out), `<base>:join:<join id>`: a hash of window, timeout_ms, open (children
-- not finished), running (released and not finished), created, summarised (ms) and summary
-- (the summary item's enqueue arguments, JSON); `...:held`, a list of children waiting for
-- the window (their enqueue arguments, JSON); `...:children`, child id -> its state (JSON:
-- state held|running|succeeded|dead_lettered|timed_out, released, finished, error, attempts).
-- Per stream, `<stream>:leases`: sorted set entry id -> when its claim was last renewed
-- (ms; delivered or heartbeated; -inf once handed back). A claim whose lease is older than
-- the heartbeat timeout is stale: the next claim takes it over.

local function split(text, separator)
  local parts = {}
  for part in string.gmatch(text, '[^' .. (separator or ' ') .. ']+') do
    parts[#parts + 1] = part
  end
  return parts
end

local function fields_of(flat)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map
end

local function stream_key(project, stage, specialty, lane)
  return base .. ':q:' .. project .. ':' .. stage .. ':' .. specialty .. ':' .. lane
end

-- Tell listeners (the operator: scale from zero without waiting for a poll) that an item
-- of route `r` became deliverable. Nobody listening costs nothing, and nothing depends on
-- the message arriving.
local function announce(r)
  redis.call('PUBLISH', ARRIVALS, r[1] .. ' ' .. r[2] .. ' ' .. r[3])
end

-- Append an item (whose route is set) to its lane; `t` is when it became deliverable.
local function push(id, t)
  local r = split(redis.call('HGET', ROUTE, id))
  local key = stream_key(r[1], r[2], r[3], r[4])
  if redis.call('EXISTS', key) == 0 then
    redis.call('XGROUP', 'CREATE', key, r[2], '0', 'MKSTREAM')
  end
  redis.call('SADD', STREAMS, key)
  local entry = redis.call('XADD', key, '*', 'id', id, 't', t)
  redis.call('HSET', WHERE, id, key .. ' ' .. entry)
  announce(r)
end

-- Stored once per id: an id waiting, in flight, retrying or completed is not added again.
local function enqueue_one(id, route, json, attempts, t)
  if redis.call('HEXISTS', ITEMS, id) == 1 or redis.call('HEXISTS', DONE, id) == 1 then
    return false
  end
  redis.call('HSET', ITEMS, id, json)
  redis.call('HSET', ROUTE, id, route)
  redis.call('HSET', ATTEMPTS, id, attempts)
  local r = split(route)
  redis.call('SADD', PROJECTS, r[1])
  -- Arrivals, for the autoscaler's forecast: new items only, not retries or releases.
  redis.call('HINCRBY', COUNTS, r[1] .. ' ' .. r[2] .. ' enqueued ' .. r[3], 1)
  push(id, t)
  return true
end

local function leases(key)
  return key .. ':leases'
end

local function lease(key, entry, t)
  redis.call('ZADD', leases(key), t, entry)
end

local function unlease(key, entry)
  redis.call('ZREM', leases(key), entry)
end

-- Pending entries with no lease: read by a waiting worker's blocking XREADGROUP (outside
-- any script) that never reached accept.lua, because the worker died or lost the reply
-- (or left by a version before leases). Each counts as leased when Redis delivered it, its
-- idle time before `now`. Returns {{entry id, lease time}, ...}.
local function unleased(key, group, now)
  local found = {}
  local pending = redis.call('XPENDING', key, group)[1]
  if pending <= redis.call('ZCARD', leases(key)) then return found end
  for _, p in ipairs(redis.call('XPENDING', key, group, '-', '+', pending)) do
    if not redis.call('ZSCORE', leases(key), p[1]) then
      found[#found + 1] = {p[1], tonumber(now) - p[3]}
    end
  end
  return found
end

-- Of stream entry ids, the oldest (lowest) one.
local function lowest_id(ids)
  local best, best_ms, best_seq = nil, nil, nil
  for _, id in ipairs(ids) do
    local parts = split(id, '-')
    local ms, seq = tonumber(parts[1]), tonumber(parts[2])
    if not best or ms < best_ms or (ms == best_ms and seq < best_seq) then
      best, best_ms, best_seq = id, ms, seq
    end
  end
  return best
end

-- Take the item out of wherever it waits or runs.
local function unplace(id, group)
  local where = redis.call('HGET', WHERE, id)
  if not where then return end
  if where == 'retry' then
    redis.call('ZREM', RETRY, id)
  else
    local p = split(where)
    redis.call('XACK', p[1], group, p[2])
    redis.call('XDEL', p[1], p[2])
    unlease(p[1], p[2])
  end
  redis.call('HDEL', WHERE, id)
end

local function forget(id)
  redis.call('HDEL', ITEMS, id)
  redis.call('HDEL', ROUTE, id)
  redis.call('HDEL', ATTEMPTS, id)
  redis.call('HDEL', WHERE, id)
end

-- The claim (stream entry) is still where the item is and still this consumer's.
local function owns(id, key, entry, consumer, group)
  if redis.call('HGET', WHERE, id) ~= key .. ' ' .. entry then return false end
  local pending = redis.call('XPENDING', key, group, entry, entry, 1)
  return pending[1] ~= nil and pending[1][2] == consumer
end

local function last_delivered(key, group)
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local g = fields_of(info)
    if g['name'] == group then return g['last-delivered-id'], g['pending'], g['lag'] end
  end
  return '0-0', 0, false
end

-- Hand a just-read stream entry to the claimant, leased from `now`: count the attempt and
-- return what the client needs, or nil (after dropping it) for an entry no item points at
-- any more, left behind by a crash in the middle of moving an item.
local function deliver(key, group, entry, reclaimed, now)
  local f = fields_of(entry[2])
  local id = f['id']
  if not id or redis.call('HGET', WHERE, id) ~= key .. ' ' .. entry[1] then
    redis.call('XACK', key, group, entry[1])
    redis.call('XDEL', key, entry[1])
    unlease(key, entry[1])
    return nil
  end
  lease(key, entry[1], now)
  local attempts = redis.call('HINCRBY', ATTEMPTS, id, 1)
  return {key, entry[1], id, redis.call('HGET', ITEMS, id), redis.call('HGET', ROUTE, id),
          attempts, f['t'], reclaimed}
end

-- Leave a delivered entry at its place, owned by the pseudo-consumer "released" with a
-- lease that is always stale, for the next claim to take over at once.
local function hand_back(key, group, entry)
  redis.call('XCLAIM', key, group, 'released', 0, entry, 'JUSTID')
  lease(key, entry, '-inf')
end

-- ------------------------------------------------------------------ joins (fan-out)

local function join_key(jid)
  return base .. ':join:' .. jid
end

local function joins_of(child)
  return base .. ':joinof:' .. child
end

-- A parent issue and its sub-issues: what the content stage reads instead of GitHub.
local function record_family(project, parent, children)
  redis.call('HSET', FAMILIES, project .. ' ' .. parent, children)
  for _, child in ipairs(split(children)) do
    redis.call('HSET', PARENTS, project .. ' ' .. child, parent)
  end
end

local function nil_if_null(value)
  if value == cjson.null then return nil end
  return value
end

-- Mark a held or running child finished (`outcome`); false if it already was.
local function join_finish_child(jid, child, outcome, err, attempts, now)
  local key = join_key(jid)
  local raw = redis.call('HGET', key .. ':children', child)
  if not raw then return false end
  local state = cjson.decode(raw)
  if state['state'] ~= 'running' and state['state'] ~= 'held' then return false end
  local was_running = state['state'] == 'running'
  state['state'] = outcome
  state['finished'] = tonumber(now)
  state['error'] = nil_if_null(err)
  state['attempts'] = nil_if_null(attempts)
  redis.call('HSET', key .. ':children', child, cjson.encode(state))
  redis.call('HINCRBY', key, 'open', -1)
  if was_running then redis.call('HINCRBY', key, 'running', -1) end
  redis.call('ZREM', DEADLINES, jid .. ' ' .. child)
  redis.call('SREM', joins_of(child), jid)
  return true
end

-- Release held children while fewer than the window run (each gets its deadline); once
-- no child is open, enqueue the summary (once). Returns the ids released.
local function join_advance(jid, now)
  local key = join_key(jid)
  local window = tonumber(redis.call('HGET', key, 'window'))
  local timeout = tonumber(redis.call('HGET', key, 'timeout_ms'))
  local released = {}
  while tonumber(redis.call('HGET', key, 'running')) < window do
    local raw = redis.call('LPOP', key .. ':held')
    if not raw then break end
    local c = cjson.decode(raw)
    local id = c[1]
    local state = cjson.decode(redis.call('HGET', key .. ':children', id))
    state['state'] = 'running'
    state['released'] = tonumber(now)
    redis.call('HSET', key .. ':children', id, cjson.encode(state))
    redis.call('HINCRBY', key, 'running', 1)
    redis.call('ZADD', DEADLINES, tonumber(now) + timeout, jid .. ' ' .. id)
    released[#released + 1] = id
    if not enqueue_one(id, c[2], c[3], c[4], now) then
      -- Already known to the queue: waiting or in flight (its finish will count here), or
      -- finished meanwhile (count it now).
      local done = redis.call('HGET', DONE, id)
      if done then
        local record = cjson.decode(done)
        join_finish_child(jid, id, record['outcome'], record['error'], record['attempts'], now)
      end
    end
  end
  if tonumber(redis.call('HGET', key, 'open')) == 0
      and redis.call('HEXISTS', key, 'summarised') == 0 then
    redis.call('HSET', key, 'summarised', now)
    local s = cjson.decode(redis.call('HGET', key, 'summary'))
    enqueue_one(s[1], s[2], s[3], s[4], now)
  end
  return released
end

-- A finished item (completed or dead-lettered) that is a child of joins counts there.
local function join_on_finish(id, outcome, record_json, now)
  local jids = redis.call('SMEMBERS', joins_of(id))
  if #jids == 0 then return end
  local record = cjson.decode(record_json)
  for _, jid in ipairs(jids) do
    if join_finish_child(jid, id, outcome, record['error'], record['attempts'], now) then
      join_advance(jid, now)
    end
  end
end

-- Children whose deadline has passed are timed out in their join (up to 100 per call).
local function join_expire(now)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', now, 'LIMIT', 0, 100)) do
    local pair = split(member)
    if join_finish_child(pair[1], pair[2], 'timed_out', nil, nil, now) then
      join_advance(pair[1], now)
    else
      redis.call('ZREM', DEADLINES, member)
    end
  end
end

-- The key of the UTC day `now` (ms) falls in: a new day starts with nothing spent.
local function spend_key(now)
  return SPEND_PREFIX .. math.floor(tonumber(now) / DAY_MS)
end

-- Whether the project has spent its daily budget (tokens or estimated cost) by `now`:
-- its items are then not delivered (they wait, as a held project's do) until the day
-- turns at 00:00 UTC.
local function over_budget(project, now)
  local limits = redis.call('HGET', BUDGETS, project)
  if not limits then return false end
  local parts = split(limits, ' ')
  local key = spend_key(now)
  local tokens, cost = tonumber(parts[1]), tonumber(parts[2])
  if tokens and tonumber(redis.call('HGET', key, project .. ' tokens') or '0') >= tokens then
    return true
  end
  if cost and tonumber(redis.call('HGET', key, project .. ' cost') or '0') >= cost then
    return true
  end
  return false
end
