-- wrk script: every request creates a new group (a durable write).
-- Names are unique per wrk thread and request, so every request must answer 201.
local counter = 0
local prefix
local auth = os.getenv("GH_AUTH")
local run = os.getenv("GH_RUN") or "0"
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  prefix = "bench-" .. run .. "-" .. tostring(tid) .. "-"
end

function request()
  counter = counter + 1
  local body = '{"name":"' .. prefix .. counter .. '"}'
  return wrk.format("POST", "/access/api/v2/groups",
    {["Content-Type"] = "application/json", ["Authorization"] = auth}, body)
end
