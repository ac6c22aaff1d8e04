-- The cluster as Redis knows it. Returns {nodes, rooms}: each node as {id, url, media,
-- participants, rooms, cpu, draining, lease_left_ms}, each room as {name, node}; all text.
-- ARGV: prefix.
local nodes = {}
local entries = redis.call('ZRANGE', prefix .. 'nodes', 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local node = entries[i]
  local entry = redis.call('HMGET', prefix .. 'node:' .. node,
    'url', 'media', 'participants', 'rooms', 'cpu', 'draining')
  if entry[1] then
    table.insert(nodes, {node, entry[1], entry[2] or '', entry[3] or '0', entry[4] or '0',
      entry[5] or '0', entry[6] or '0', tostring(tonumber(entries[i + 1]) - now)})
  end
end
local rooms = {}
for _, room in ipairs(redis.call('ZRANGE', prefix .. 'rooms', 0, -1)) do
  local node = redis.call('GET', prefix .. 'room:' .. room)
  if node then
    table.insert(rooms, {room, node})
  end
end
return {nodes, rooms}
