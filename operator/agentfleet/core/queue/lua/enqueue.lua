-- ARGV: base, now_ms, then (id, route, json, attempts) per item. Returns the new ids.
local added = {}
for i = 3, #ARGV, 4 do
  if enqueue_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[2]) then
    added[#added + 1] = ARGV[i]
  end
end
return added
