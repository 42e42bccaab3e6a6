-- One GCRA step: exactly the arithmetic of rolegate_core::ports::gcra.
-- KEYS[1] = the bucket (stores the TAT in Unix ms); ARGV = now_ms, burst (>= 1), period_ms (>= 1).
-- Returns { allowed (1/0, or -1 when the stored TAT is not a number), remaining,
--           retry_after_ms, reset_after_ms }.
local function div(a, b) -- integer division truncating toward zero, like Rust's i64 `/`
  if a < 0 then return -div(-a, b) end
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
local now, burst, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval = math.max(div(period, burst), 1)
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local t = tonumber(stored)
  if not t then return { -1, 0, 0, 0 } end
  tat = math.max(t, now)
end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return { 0, 0, allow_at - now, math.max(tat - now, 0) }
end
local remaining = math.max(div(interval * burst - (new_tat - now), interval), 0)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', new_tat - now))
return { 1, remaining, 0, math.max(new_tat - now, 0) }
