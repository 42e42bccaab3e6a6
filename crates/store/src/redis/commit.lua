-- Atomic transaction: check every condition, then apply every write, or do nothing.
-- KEYS[1]   = the ordered index (sorted set, score 0, members are unprefixed keys)
-- KEYS[2..] = the prefixed data keys involved
-- ARGV[1]   = number of conditions, then per condition: kind ('A' absent, 'P' present,
--             'E' equals), KEYS position, expected bytes (empty unless 'E');
--             then per write: 'S', KEYS position, member, value, ttl ms ('0' = no ttl)
--                         or  'D', KEYS position, member
-- Returns 1 when applied, 0 when a condition failed (nothing written).
local ncond = tonumber(ARGV[1])
local i = 2
for _ = 1, ncond do
  local kind = ARGV[i]
  local cur = redis.call('GET', KEYS[tonumber(ARGV[i + 1])])
  local expected = ARGV[i + 2]
  i = i + 3
  if kind == 'A' then
    if cur then return 0 end
  elseif kind == 'P' then
    if not cur then return 0 end
  else
    if cur ~= expected then return 0 end
  end
end
while i <= #ARGV do
  local kind = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  local member = ARGV[i + 2]
  if kind == 'S' then
    local ttl = ARGV[i + 4]
    if ttl == '0' then
      redis.call('SET', key, ARGV[i + 3])
    else
      redis.call('SET', key, ARGV[i + 3], 'PX', ttl)
    end
    redis.call('ZADD', KEYS[1], 0, member)
    i = i + 5
  else
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], member)
    i = i + 3
  end
end
return 1
