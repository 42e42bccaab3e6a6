-- GCRA steps on several buckets, all or nothing: exactly rolegate_core::ports::gcra_all.
-- KEYS[i] = bucket i (stores its TAT in Unix ms); ARGV[1] = now_ms, then for bucket i
-- ARGV[2i] = burst (>= 1) and ARGV[2i+1] = period_ms (>= 1).
-- Returns, for each bucket in order, { allowed (1/0), remaining, retry_after_ms,
-- reset_after_ms }, flattened. The buckets are written only when every one allows.
-- A stored TAT that is not a number returns { -1, i } and writes nothing.
local function div(a, b) -- integer division truncating toward zero, like Rust's i64 `/`
  if a < 0 then return -div(-a, b) end
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local now = tonumber(ARGV[1])
local out, tats, all = {}, {}, true
for i, key in ipairs(KEYS) do
  local burst, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local interval = math.max(div(period, burst), 1)
  local tat = now
  local stored = redis.call('GET', key)
  if stored then
    local t = tonumber(stored)
    if not t then return { -1, i } end
    tat = math.max(t, now)
  end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    all = false
    for _, v in ipairs({ 0, 0, allow_at - now, math.max(tat - now, 0) }) do out[#out + 1] = v end
  else
    local remaining = math.max(div(interval * burst - (new_tat - now), interval), 0)
    for _, v in ipairs({ 1, remaining, 0, math.max(new_tat - now, 0) }) do out[#out + 1] = v end
    tats[i] = new_tat
  end
end
if all then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', string.format('%.0f', tats[i] - now))
  end
end
return out
