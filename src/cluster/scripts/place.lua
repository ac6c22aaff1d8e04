-- Where a room lives: on the node its entry names, while that node is live and not draining;
-- otherwise on the node with the most headroom, recorded with a lease. The rule: among live
-- nodes that are not draining, the lowest load, participants + 4 x rooms (rooms placed since
-- the node's last renewal included, so rooms opened at the same moment spread); a node at 90 %
-- CPU or more only when every node is; ties to the lower CPU, then the lower id.
-- ARGV: prefix, room, lease_ms, max_rooms (0: no limit).
-- Returns {'placed', node, url}, {'full'} or {'none'}.
local room, lease, max_rooms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local key = prefix .. 'room:' .. room
local owner = redis.call('GET', key)
if owner then
  local host = redis.call('HMGET', prefix .. 'node:' .. owner, 'url', 'draining')
  if host[1] and host[2] ~= '1' then
    return {'placed', owner, host[1]}
  end
elseif max_rooms > 0 and redis.call('ZCARD', prefix .. 'rooms') >= max_rooms then
  return {'full'}
end

local function better(a, b)
  if a.busy ~= b.busy then return not a.busy end
  if a.load ~= b.load then return a.load < b.load end
  if a.cpu ~= b.cpu then return a.cpu < b.cpu end
  return a.node < b.node
end

local best = nil
for _, node in ipairs(redis.call('ZRANGE', prefix .. 'nodes', 0, -1)) do
  local entry = redis.call('HMGET', prefix .. 'node:' .. node,
    'url', 'participants', 'rooms', 'cpu', 'draining')
  if entry[1] and entry[5] ~= '1' then
    local cpu = tonumber(entry[4]) or 0
    local candidate = {
      node = node,
      url = entry[1],
      busy = cpu >= 0.9,
      load = (tonumber(entry[2]) or 0) + 4 * (tonumber(entry[3]) or 0),
      cpu = cpu,
    }
    if best == nil or better(candidate, best) then best = candidate end
  end
end
if best == nil then
  return {'none'}
end
redis.call('SET', key, best.node, 'PX', lease)
redis.call('ZADD', prefix .. 'rooms', now + lease, room)
redis.call('HINCRBY', prefix .. 'node:' .. best.node, 'rooms', 1)
return {'placed', best.node, best.url}
