-- (m) AssumeRole sent straight to moto (the STS query protocol; moto checks no signature),
-- with the parameters rolegate sends on a cold credential request (ExternalId,
-- SourceIdentity, three session tags, the readonly level's managed policy): the baseline
-- rolegate's overhead is read from.
local common = dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "[^/]*$", "") .. "common.lua")

setup = common.setup

local n = 0
function request()
  n = n + 1
  local body = "Action=AssumeRole&Version=2011-06-15"
    .. "&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Frolegate-seed-0000001"
    .. "&RoleSessionName=seed-0000001.apikey.0123456789abcdef." .. string.format("%016x", n)
    .. "&ExternalId=benchbenchbenchbenchbenchbenchbenchbenchbenchbenc"
    .. "&SourceIdentity=apikey.0123456789abcdef&DurationSeconds=3600"
    .. "&Tags.member.1.Key=rolegate%3Aorg&Tags.member.1.Value=seed-0000001"
    .. "&Tags.member.2.Key=rolegate%3Aprincipal&Tags.member.2.Value=apikey%3A0123456789abcdef"
    .. "&PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess"
  return wrk.format("POST", "/", { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end
