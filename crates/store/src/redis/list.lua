-- One page of an ordered prefix listing.
-- KEYS[1] = the ordered index; ARGV[1] = key namespace prefix; ARGV[2], ARGV[3] = the
-- ZRANGEBYLEX bounds; ARGV[4] = items wanted; ARGV[5] = most index entries to examine.
-- Index entries whose key has expired are removed as they are met. Returns
-- { resume, key1, value1, key2, value2, ... } where resume is the last member examined when
-- the examination budget ran out before the page filled, else ''.
local ns, min, max = ARGV[1], ARGV[2], ARGV[3]
local want, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = { '' }
local found, scanned, last = 0, 0, ''
while found < want and scanned < budget do
  local count = math.min(want - found, budget - scanned)
  local batch = redis.call('ZRANGEBYLEX', KEYS[1], min, max, 'LIMIT', 0, count)
  if #batch == 0 then break end
  for _, member in ipairs(batch) do
    local value = redis.call('GET', ns .. member)
    if value then
      out[#out + 1] = member
      out[#out + 1] = value
      found = found + 1
    else
      redis.call('ZREM', KEYS[1], member)
    end
  end
  scanned = scanned + #batch
  last = batch[#batch]
  min = '(' .. last
end
if found < want and scanned >= budget then out[1] = last end
return out
