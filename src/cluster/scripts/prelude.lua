-- Shared by every script, ahead of its own text. ARGV[1] is the key prefix. Times are Redis's
-- own clock, in milliseconds, so the nodes' clocks never have to agree. Entries whose lease has
-- lapsed leave the two indexes here; their keys expire by themselves.
local prefix = ARGV[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', prefix .. 'nodes', '-inf', '(' .. now)
redis.call('ZREMRANGEBYSCORE', prefix .. 'rooms', '-inf', '(' .. now)

-- Lets go of `room`'s placement if `node` holds it; another node's stays.
local function release(room, node)
  local key = prefix .. 'room:' .. room
  if redis.call('GET', key) == node then
    redis.call('DEL', key)
    redis.call('ZREM', prefix .. 'rooms', room)
  end
end
