-- Renew the claim's lease. ARGV: base, id, stream, entry, consumer, stage, now_ms.
-- 1 while the claim is still ours.
local id, key, entry, consumer, stage = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if not owns(id, key, entry, consumer, stage) then return 0 end
lease(key, entry, ARGV[7])
return 1
