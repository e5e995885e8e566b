-- Record a parent issue's sub-issues (genesis' plan), as fan_out.lua does for a master.
-- ARGV: base, project, parent issue, its sub-issues ("n n ..."). Returns 1.
record_family(ARGV[2], ARGV[3], ARGV[4])
return 1
