-- A node's renewal: its entry with its load, and the lease of every room it hosts. Rooms it
-- no longer hosts are let go. A room another node took meanwhile (while this one could not
-- reach Redis) is left to that node and returned, for this one to report.
-- ARGV: prefix, node, lease_ms, url, media, participants, rooms, cpu, draining, started,
--       the number of rooms held, the rooms held, then the rooms let go.
local node, lease = ARGV[2], tonumber(ARGV[3])
local expiry = now + lease
local entry = prefix .. 'node:' .. node
redis.call('HSET', entry, 'url', ARGV[4], 'media', ARGV[5], 'participants', ARGV[6],
  'rooms', ARGV[7], 'cpu', ARGV[8], 'draining', ARGV[9], 'started', ARGV[10])
redis.call('PEXPIRE', entry, lease)
redis.call('ZADD', prefix .. 'nodes', expiry, node)
local held = tonumber(ARGV[11])
local taken = {}
for i = 12, 11 + held do
  local room = ARGV[i]
  local key = prefix .. 'room:' .. room
  local owner = redis.call('GET', key)
  if owner == false or owner == node then
    redis.call('SET', key, node, 'PX', lease)
    redis.call('ZADD', prefix .. 'rooms', expiry, room)
  else
    table.insert(taken, room)
  end
end
for i = 12 + held, #ARGV do
  release(ARGV[i], node)
end
return taken
