-- (a) GET /api/orgs/{org} with that org's API key, each request for a random org of the
-- keys file. Requests are built once in init, so wrk's Lua does no work per request.
-- Args: KEYS_FILE
local common = dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")
local requests = {}

setup = common.setup

function init(args)
  common.seed()
  local orgs, keys = common.read_keys(args[1])
  for i = 1, #orgs do
    requests[i] = wrk.format("GET", "/api/orgs/" .. orgs[i], { ["X-Api-Key"] = keys[i] })
  end
end

function request()
  return requests[math.random(#requests)]
end
