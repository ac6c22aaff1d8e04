-- A node leaving the cluster: its entry goes, and so do the rooms it still holds.
-- ARGV: prefix, node, the rooms it holds.
local node = ARGV[2]
redis.call('DEL', prefix .. 'node:' .. node)
redis.call('ZREM', prefix .. 'nodes', node)
for i = 3, #ARGV do
  release(ARGV[i], node)
end
return 0
