-- Helpers shared by the workload scripts (loaded with dofile by each of them).
-- Every secret comes from a file named on the command line, never from argv itself, so it
-- does not show up in `ps`.

local common = {}

-- The first line of a file, without surrounding whitespace.
function common.read_line(path)
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  local line = f:read("*l") or ""
  f:close()
  return (line:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The `<org> <api key>` pairs of a keys file (`rolegate bench-seed --keys-out`).
function common.read_keys(path)
  local orgs, keys = {}, {}
  for line in io.lines(path) do
    local org, key = line:match("^(%S+)%s+(%S+)$")
    if org then
      orgs[#orgs + 1] = org
      keys[#keys + 1] = key
    end
  end
  assert(#orgs > 0, "no '<org> <key>' lines in " .. path)
  return orgs, keys
end

-- Gives each wrk thread its own number (`tid` in the thread's globals) and random seed.
local next_tid = 0
function common.setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end

function common.seed()
  math.randomseed(os.time() * 1000 + (tid or 0))
end

-- 10 random hex digits from /dev/urandom.
function common.random_tag()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(5)
  f:close()
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

return common
