-- (c) GET /api/audit?limit=50 as an admin (the oldest 50 events of the whole log).
-- Args: TOKEN_FILE
local common = dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")
local req

function init(args)
  req = wrk.format("GET", "/api/audit?limit=50",
    { ["Authorization"] = "Bearer " .. common.read_line(args[1]) })
end

function request()
  return req
end
