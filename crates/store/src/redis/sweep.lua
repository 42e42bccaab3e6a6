-- Background clean-up of the ordered index: examines the next ARGV[2] entries after the
-- cursor stored at KEYS[2] and removes those whose key (ARGV[1] .. member) no longer exists.
-- KEYS[1] = the ordered index. Returns the number of entries removed.
local batch_size = tonumber(ARGV[2])
local cursor = redis.call('GET', KEYS[2])
local min = '-'
if cursor then min = '(' .. cursor end
local batch = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, batch_size)
local removed = 0
for _, member in ipairs(batch) do
  if redis.call('EXISTS', ARGV[1] .. member) == 0 then
    redis.call('ZREM', KEYS[1], member)
    removed = removed + 1
  end
end
if #batch < batch_size then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], batch[#batch])
end
return removed
