-- (g) A mixed workload, as a busy deployment sees it: per request, 90% warm credentials
-- (POST /api/credentials from the cache, with the org's API key), 9% org reads
-- (GET /api/orgs/{org}, API key) and 1% registrations (POST /api/orgs, admin token, a new
-- name and Idempotency-Key each). The credential cache is filled by workload (d) first.
-- Args: KEYS_FILE TOKEN_FILE
local common = dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")
local creds, reads = {}, {}
local admin, tag
local n = 0

setup = common.setup

function init(args)
  common.seed()
  local orgs, keys = common.read_keys(args[1])
  for i = 1, #orgs do
    creds[i] = wrk.format("POST", "/api/credentials",
      { ["X-Api-Key"] = keys[i], ["Content-Type"] = "application/json" },
      '{"org_name":"' .. orgs[i] .. '"}')
    reads[i] = wrk.format("GET", "/api/orgs/" .. orgs[i], { ["X-Api-Key"] = keys[i] })
  end
  admin = {
    ["Authorization"] = "Bearer " .. common.read_line(args[2]),
    ["Content-Type"] = "application/json",
  }
  tag = common.random_tag()
end

function request()
  local r = math.random(100)
  if r <= 90 then
    return creds[math.random(#creds)]
  elseif r <= 99 then
    return reads[math.random(#reads)]
  end
  n = n + 1
  local name = string.format("g%s-%d", tag, n)
  admin["Idempotency-Key"] = name
  return wrk.format("POST", "/api/orgs", admin, '{"org_name":"' .. name .. '"}')
end
