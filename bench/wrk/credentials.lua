-- (d) POST /api/credentials with an org's API key, for a random org of the keys file:
-- `{"org_name": ...}` (warm: served from the cache) or with `"force_refresh": true` (cold:
-- a new AssumeRole every time). See workload_credentials_* in bench/run.
-- Args: KEYS_FILE warm|cold
local common = dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")
local requests = {}

setup = common.setup

function init(args)
  common.seed()
  local orgs, keys = common.read_keys(args[1])
  local extra = (args[2] == "cold") and ',"force_refresh":true' or ""
  for i = 1, #orgs do
    requests[i] = wrk.format("POST", "/api/credentials",
      { ["X-Api-Key"] = keys[i], ["Content-Type"] = "application/json" },
      '{"org_name":"' .. orgs[i] .. '"' .. extra .. '}')
  end
end

function request()
  return requests[math.random(#requests)]
end
