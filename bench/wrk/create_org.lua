-- (b) POST /api/orgs: every request registers a new org, with a unique name and
-- Idempotency-Key: `b<tag>-<n>`, where each wrk thread of each run draws its own random tag
-- (a warm-up's requests cut off mid-flight keep their keys "in progress" for minutes, so
-- a later run must never reuse a name).
-- Args: TOKEN_FILE
local common = dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")
local headers, tag
local n = 0

function init(args)
  headers = {
    ["Authorization"] = "Bearer " .. common.read_line(args[1]),
    ["Content-Type"] = "application/json",
  }
  tag = common.random_tag()
end

function request()
  n = n + 1
  local name = string.format("b%s-%d", tag, n)
  headers["Idempotency-Key"] = name
  return wrk.format("POST", "/api/orgs", headers, '{"org_name":"' .. name .. '"}')
end
